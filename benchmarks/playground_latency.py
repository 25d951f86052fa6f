"""Responsiveness of the interactive lab, measured in the browser (headless Chromium via Playwright).

    python benchmarks/playground_latency.py [--repeats 10]

Starts ``linearnets lab --serve`` and measures, from the page's own clock (``performance.now()``,
read in the page when the condition first holds: no round trip to Playwright is counted):

* playground 1: a change of lr → the first point of the new path in the page's data, and → the
  whole run;
* playground 2, opened in a tab that has BokehJS cached (as on any visit after the first):
  navigation start → the HTML received (the server has made the page's session and started its
  run) → BokehJS loaded and run → the first epoch in the page's data → the first epoch drawn (its
  plot painted) → the whole page drawn (BokehJS's "document idle"); the same in a fresh browser
  context (empty cache: BokehJS downloaded and compiled, the first visit); and in a fresh context
  that opens the index page first and then clicks the playground's link (the path ``lab --serve``
  opens: BokehJS is cached by the index page);
* playground 2: a change of loss → the first epoch of the new run in the page's data.

Prints the median and the worst of ``--repeats`` measurements of each, and the machine's load
average before and after (the timings scale with it: this is a 2-core machine shared with other work).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys

from playwright.sync_api import sync_playwright

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]

CHANGE_AND_WAIT = """async ([name, value, until]) => {
    const d = Bokeh.documents[0];
    const path = d.get_model_by_name('path'), curves = d.get_model_by_name('curves');
    const old = {w1: path ? path.data.w1[1] : null, loss: curves ? curves.data.loss[0] : null};
    const t0 = performance.now();
    d.get_model_by_name(name).value = value;
    const check = new Function('d', 'old', 'return ' + until);
    while (!check(d, old)) {
        if (performance.now() - t0 > 20000) throw new Error('not seen within 20 s: ' + until);
        await new Promise(r => setTimeout(r, 2));
    }
    return performance.now() - t0;
}"""

# Runs in the softmax page from its start (an init script, before any of the page's own scripts) and
# records on the page's clock: when the first epoch is in the page's data; when a plot of it has
# painted (the animation frame after its plot view has finished, with the data in hand); when
# BokehJS reports the whole document idle (every view built and painted); and, from the Navigation
# Timing API, when the HTML arrived and when BokehJS had loaded and run (DOMContentLoaded).
WATCH = """if (location.pathname === '/softmax') {
    const t = window.__opened = {};
    const tick = () => {
        const d = window.Bokeh && Bokeh.documents && Bokeh.documents[0];
        const curves = d && d.get_model_by_name('curves');
        if (t.data === undefined && curves && curves.data.epoch.length >= 1) t.data = performance.now();
        if (t.data !== undefined && t.painting === undefined) {
            for (const m of d.all_models) {
                const view = m.data_source === curves && m.glyph ? Bokeh.index.find_one(m) : null;
                if (view && view.parent.has_finished()) {
                    t.painting = true;
                    requestAnimationFrame(() => { t.drawn = performance.now(); });
                    break;
                }
            }
        }
        if (t.idle === undefined && d && d.roots().length && d.is_idle) t.idle = performance.now();
        if (t.drawn === undefined || t.idle === undefined) return setTimeout(tick, 1);
        const nav = performance.getEntriesByType('navigation')[0];
        t.html = nav.responseStart;
        t.scripts = nav.domContentLoadedEventEnd;
    };
    tick();
}"""
OPENED = """() => new Promise((resolve, reject) => {
    const wait = () => {
        const t = window.__opened;
        if (t && t.scripts !== undefined) return resolve([t.html, t.scripts, t.data, t.drawn, t.idle]);
        if (performance.now() > 30000) return reject(new Error('not drawn within 30 s: ' + JSON.stringify(t)));
        setTimeout(wait, 20);
    };
    wait();
})"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    load_before = os.getloadavg()
    proc = subprocess.Popen([sys.executable, "-m", "linearnets", "lab", "--serve", "--no-browser"],
                            stdout=subprocess.PIPE, text=True)
    url = re.search(r"(http://\S+/)", proc.stdout.readline()).group(1)
    opened = ("HTML received (its session made, its run started)", "BokehJS loaded and run (DOMContentLoaded)",
              "first epoch in the page's data", "first epoch drawn", "whole page drawn")
    results = {"lr change → first point of the new path": [], "lr change → whole path drawn (60 GD steps)": [],
               **{f"page open → {what}": [] for what in opened},
               **{f"page open, first visit → {what}": [] for what in opened},
               **{f"page open from the index, first visit → {what}": [] for what in opened},
               "loss change → first epoch of the new run": []}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.add_init_script(WATCH)
            page.goto(url + "regression")
            page.wait_for_function("() => window.Bokeh && Bokeh.documents.length &&"
                                   " Bokeh.documents[0].get_model_by_name('info').text.includes('Done')")
            for i in range(args.repeats):
                lr = 0.2 + 0.05 * i
                first = page.evaluate(CHANGE_AND_WAIT, ["lr", lr, "d.get_model_by_name('path').data.w1.length > 1 && d.get_model_by_name('path').data.w1[1] !== old.w1"])
                page.wait_for_function("() => Bokeh.documents[0].get_model_by_name('info').text.includes('Done')")
                results["lr change → first point of the new path"].append(first)
                whole = page.evaluate(CHANGE_AND_WAIT, ["lr", lr + 0.01, "d.get_model_by_name('path').data.w1.length > 1 && d.get_model_by_name('path').data.w1[1] !== old.w1"
                                                       " && d.get_model_by_name('info').text.includes('Done')"])
                results["lr change → whole path drawn (60 GD steps)"].append(whole)
            for _ in range(args.repeats):
                page.goto(url + "softmax", wait_until="commit")      # BokehJS cached by the visits before
                for what, ms in zip(opened, page.evaluate(OPENED), strict=True):
                    results[f"page open → {what}"].append(ms)
                t = page.evaluate(CHANGE_AND_WAIT, ["loss", "mse",         # a fresh page trains cross-entropy
                                                   "d.get_model_by_name('curves').data.loss.length >= 1 && d.get_model_by_name('curves').data.loss[0] !== old.loss"])
                results["loss change → first epoch of the new run"].append(t)
                context = browser.new_context(viewport={"width": 1400, "height": 900})   # empty cache
                fresh = context.new_page()
                fresh.add_init_script(WATCH)
                fresh.goto(url + "softmax", wait_until="commit")
                for what, ms in zip(opened, fresh.evaluate(OPENED), strict=True):
                    results[f"page open, first visit → {what}"].append(ms)
                context.close()
                context = browser.new_context(viewport={"width": 1400, "height": 900})
                fresh = context.new_page()
                fresh.add_init_script(WATCH)
                fresh.goto(url)                                        # the index, as lab --serve opens it
                fresh.locator("a[href='/softmax']").click()
                fresh.wait_for_url("**/softmax", wait_until="commit")
                for what, ms in zip(opened, fresh.evaluate(OPENED), strict=True):
                    results[f"page open from the index, first visit → {what}"].append(ms)
                context.close()
            browser.close()
    finally:
        proc.terminate()
        proc.wait()
    print(f"{'measurement':80s} {'median ms':>10s} {'worst ms':>10s}")
    for name, values in results.items():
        print(f"{name:80s} {statistics.median(values):10.0f} {max(values):10.0f}")
    print(f"load average (1 min) before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
