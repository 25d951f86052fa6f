"""Responsiveness of the interactive lab, measured in the browser (headless Chromium via Playwright).

    python benchmarks/playground_latency.py [--repeats 10]

Starts ``linearnets lab --serve`` and measures, from the page's own clock (``performance.now()``):

* playground 1: a change of lr → the first point of the new path drawn, and → the whole run drawn;
* playground 2: page navigation start → the first epoch plotted (the run starts with the page);
  and a change of loss → the first epoch of the new run plotted.

Prints the median and the worst of ``--repeats`` measurements of each.
"""

from __future__ import annotations

import argparse
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    proc = subprocess.Popen([sys.executable, "-m", "linearnets", "lab", "--serve", "--no-browser"],
                            stdout=subprocess.PIPE, text=True)
    url = re.search(r"(http://\S+/)", proc.stdout.readline()).group(1)
    results = {"lr change → first point of the new path": [], "lr change → whole path drawn (60 GD steps)": [],
               "page open → document drawn (BokehJS)": [],
               "page open → first epoch plotted (softmax, digits)": [],
               "loss change → first epoch of the new run plotted": []}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=ARGS)
            page = browser.new_page()
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
                page.goto(url + "softmax", wait_until="commit")
                page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", polling=5)
                results["page open → document drawn (BokehJS)"].append(page.evaluate("() => performance.now()"))
                page.wait_for_function("() => Bokeh.documents[0].get_model_by_name('curves').data.epoch.length >= 1",
                                       polling=5)
                results["page open → first epoch plotted (softmax, digits)"].append(
                    page.evaluate("() => performance.now()"))
                # (performance.now() counts from navigation start: the page's load, BokehJS, the session, the run)
                t = page.evaluate(CHANGE_AND_WAIT, ["loss", "mse",         # a fresh page trains cross-entropy
                                                   "d.get_model_by_name('curves').data.loss.length >= 1 && d.get_model_by_name('curves').data.loss[0] !== old.loss"])
                results["loss change → first epoch of the new run plotted"].append(t)
            browser.close()
    finally:
        proc.terminate()
        proc.wait()
    print(f"{'measurement':55s} {'median ms':>10s} {'worst ms':>10s}")
    for name, values in results.items():
        print(f"{name:55s} {statistics.median(values):10.0f} {max(values):10.0f}")


if __name__ == "__main__":
    main()
