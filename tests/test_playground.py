"""The interactive lab (``linearnets lab --serve``) driven by a real browser: headless Chromium
(Debian's, through Playwright) loads each playground, changes a control as a user would, and reads
back what the page plots from the page's own data (BokehJS models), never from a screenshot."""

import base64
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from bokeh.document import Document
from bokeh.embed.bundle import bundle_for_objs_and_resources
from bokeh.embed.server import server_html_page_for_session
from bokeh.resources import Resources

from linearnets.playground import apps, compute

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make test installs it)")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
SHOTS = os.environ.get("LINEARNETS_SCREENSHOTS")          # e.g. docs/img: where the README's pictures come from


def start_server(*args, report=None):
    """``linearnets lab --serve`` in a subprocess: (process, base URL)."""
    cmd = [sys.executable, "-m", "linearnets", "lab", "--serve", "--no-browser", *args]
    if report is not None:
        cmd += ["--out", str(report)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.search(r"(http://\S+/)", line)
    if not m:
        err = proc.stderr.read()
        stop(proc)
        raise AssertionError(f"no URL printed: {line!r} {err}")
    # keep reading what the server prints (its log): a full pipe would block the server mid-test
    proc.log = []
    for stream in (proc.stdout, proc.stderr):
        threading.Thread(target=lambda s=stream: proc.log.extend(s), daemon=True).start()
    return proc, m.group(1)


def stop(proc):
    proc.terminate()
    proc.wait(timeout=30)
    proc.stdout.close()
    proc.stderr.close()


def status(url, timeout=5.0):
    t0 = time.perf_counter()
    with urllib.request.urlopen(url + "status", timeout=timeout) as r:
        return json.loads(r.read()), time.perf_counter() - t0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    report = tmp_path_factory.mktemp("report")
    (report / "index.html").write_text('<section id="C2">C2 verdict</section>')
    proc, url = start_server(report=report)
    yield url
    stop(proc)


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Page:
    """A playground in a tab, with its console errors collected."""

    def __init__(self, browser, url):
        self.page = browser.new_page(viewport={"width": 1400, "height": 900})
        self.errors = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(url)
        self.page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=30000)

    def data(self, name):
        return self.page.evaluate(
            """(name) => { const d = Bokeh.documents[0].get_model_by_name(name).data; const out = {};
                for (const k of Object.keys(d)) out[k] = Array.from(d[k], v => (v && v.length !== undefined
                    && typeof v !== 'string') ? Array.from(v) : v); return out; }""", name)

    def text(self, name):
        return self.page.evaluate("(name) => Bokeh.documents[0].get_model_by_name(name).text", name)

    def set(self, name, value):
        """Change a control as its widget does on user input (the model's value, synced to the server)."""
        self.page.evaluate("([name, value]) => { Bokeh.documents[0].get_model_by_name(name).value = value; }",
                           [name, value])

    def wait(self, js, arg=None, timeout=30000):
        self.page.wait_for_function(js, arg=arg, timeout=timeout)

    def wait_text(self, name, needle, timeout=30000):
        self.wait("([n, s]) => Bokeh.documents[0].get_model_by_name(n).text.includes(s)", [name, needle], timeout)

    def shot(self, name):
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(SHOTS) / f"playground-{name}.png"))

    def close(self):
        self.page.close()


def test_regression_path_converges_below_the_stable_rate_and_diverges_above(server, browser):
    page = Page(browser, server + "regression")
    surface = compute.regression_surface()
    w_opt = surface.optimum[:2]

    def end_distance():
        path = page.data("path")
        return math.dist((path["w1"][-1], path["w2"][-1]), w_opt), math.dist((path["w1"][0], path["w2"][0]), w_opt)

    page.wait_text("info", "Done")
    last, first = end_distance()
    assert last < 1e-6 < first                              # lr 0.3 < 2/λ_max: the path ends at the optimum
    assert f"{surface.stable_lr:.3f}" in page.text("info")
    page.set("lr", 2.5)                                     # above 2/λ_max = 1.894: the guard stops it
    page.wait_text("info", "Diverged")
    assert "lr=2.5" in page.text("info") and "lr = 2.5 is <b>above</b>" in page.text("info")
    last, first = end_distance()
    assert last > 100 * first                               # the last finite point, far out
    page.set("lr", 1.8)                                     # just below: slow oscillating convergence
    page.wait_text("info", "Done")
    last, first = end_distance()
    assert last < 0.01 * first and "Diverged" not in page.text("info")
    page.set("solver", "newton")                            # Newton: one step to the optimum
    page.wait_text("info", "Running newton")
    page.wait_text("info", "Done")
    path = page.data("path")
    assert math.dist((path["w1"][1], path["w2"][1]), w_opt) < 1e-8
    page.set("solver", "gd")
    page.wait_text("info", "Running gd")
    page.wait_text("info", "Done")
    page.shot("regression")
    assert page.errors == []
    page.close()


def confusion_matrix(page):
    """The confusion matrix the page shows, read from its table: {(true, predicted): count}."""
    cells = re.findall(r'<td title="true (\d), predicted (\d)"[^>]*>(\d*)</td>', page.text("confusion"))
    return {(int(t), int(p)): int(c or 0) for t, p, c in cells}


def misclassified(page):
    """The misclassified digits the page shows: (PNG bytes, true, predicted) for each."""
    found = re.findall(r'<img src="data:image/png;base64,([^"]+)"[^>]*title="true (\d), predicted (\d)"',
                       page.text("wrong"))
    return [(base64.b64decode(png), int(t), int(p)) for png, t, p in found]


def test_softmax_trains_live_and_a_new_loss_replaces_the_run(server, browser):
    page = Page(browser, server + "softmax")
    page.wait("() => Bokeh.documents[0].get_model_by_name('confusion').text.includes('<table')")
    curves = page.data("curves")
    assert curves["epoch"] == list(range(1, 31))            # every epoch arrived, in order
    assert all(0 < s for s in curves["seconds"]) and curves["seconds"] == sorted(curves["seconds"])
    ce_final, ce_first_loss = curves["test_accuracy"][-1], curves["loss"][0]
    assert ce_final > 0.9
    cm, n_test = confusion_matrix(page), len(compute.digits_split(0)[3])
    assert len(cm) == 100 and sum(cm.values()) == n_test    # every test image counted once
    right = sum(cm[i, i] for i in range(10))
    assert right / n_test == pytest.approx(ce_final, abs=0.02)
    wrong = misclassified(page)
    assert len(wrong) == min(16, n_test - right) > 0
    for png, true, predicted in wrong:                      # an 8×8 PNG each, labelled with two different classes
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (8, 8) and true != predicted
    assert "samples/s" in page.text("rate")
    page.set("epochs", "12")
    page.set("loss", "mse")
    page.wait("() => { const d = Bokeh.documents[0]; return d.get_model_by_name('rate').text.includes('mse, epoch 12/12')"
              " && d.get_model_by_name('rate').text.includes('done')"
              " && d.get_model_by_name('confusion').text.includes('<table') }")
    curves = page.data("curves")
    assert curves["epoch"] == list(range(1, 13))            # the obsolete run's epochs are gone
    assert max(curves["loss"]) <= 1.0 < ce_first_loss         # ½‖ŷ − y‖² ≤ 1 always; CE's first epoch was above 1
    assert sum(confusion_matrix(page).values()) == n_test
    page.shot("softmax")
    assert page.errors == []
    page.close()


def click_at(page, plot, x, y):
    pos = page.page.evaluate("""([name, x, y]) => { const m = Bokeh.documents[0].get_model_by_name(name);
        const v = Bokeh.index.find_one(m); const r = v.canvas_view.el.getBoundingClientRect();
        return [r.left + v.frame.x_scale.compute(x), r.top + v.frame.y_scale.compute(y)]; }""", [plot, x, y])
    page.page.mouse.click(*pos)


def test_saddle_click_a_start_point(server, browser):
    page = Page(browser, server + "saddle")
    page.wait_text("ends", "newton")
    click_at(page, "saddle_plot", -1.0, 0.02)               # beside the saddle, off the axis
    page.wait("() => Math.abs(Bokeh.documents[0].get_model_by_name('path_newton').data.u[0] + 1.0) < 0.05")
    newton, sgd = page.data("path_newton"), page.data("path_sgd")
    assert abs(newton["u"][-1]) < 1e-6 and abs(newton["v"][-1]) < 1e-6      # Newton: attracted by the saddle
    assert abs(abs(sgd["v"][-1]) - math.sqrt(2)) < 0.05                    # SGD: escapes to a minimum
    click_at(page, "saddle_plot", 0.5, 1.2)                 # where F curves up in v: Newton finds the minimum
    page.wait("() => Math.abs(Bokeh.documents[0].get_model_by_name('path_newton').data.u[0] - 0.5) < 0.05")
    newton = page.data("path_newton")
    assert abs(newton["v"][-1] - math.sqrt(2)) < 1e-6
    assert "newton</b> ends at" in page.text("ends") and "minimum" in page.text("ends")
    page.shot("saddle")
    assert page.errors == []
    page.close()


def test_losses_drag_p_and_the_notes_example(server, browser):
    page = Page(browser, server + "losses")
    page.wait("() => Bokeh.documents[0].get_model_by_name('values').data.value[0] > 0")
    page.set("p_true", 0.2)
    page.wait("() => Math.abs(Bokeh.documents[0].get_model_by_name('values').data.value[0] - 1.6094) < 1e-3")
    v = page.data("values")
    assert v["value"][0] == pytest.approx(-math.log(0.2), abs=1e-9)                    # CE = −log p
    assert v["value"][1] == pytest.approx(0.5 * (0.8 ** 2 + 2 * 0.4 ** 2), abs=1e-9)   # ½‖ŷ − y‖²
    assert v["value"][2] == pytest.approx(v["value"][0], abs=1e-12)                    # one-hot: KL = CE
    page.page.get_by_role("button", name="notes: ŷ = [0.1, 0.1, 0.8]").click()
    page.wait("() => Math.abs(Bokeh.documents[0].get_model_by_name('values').data.value[0] - 0.2231) < 1e-3")
    assert page.page.evaluate("() => Bokeh.documents[0].get_model_by_name('p_true').value") == 0.8
    page.set("target", "smoothed")                          # KL = CE − H(P) < CE; the gradients stay equal
    page.wait("() => { const v = Bokeh.documents[0].get_model_by_name('values').data.value; return v[2] < v[0] - 0.1 }")
    curves = page.data("loss_curves")
    assert len(curves["p"]) > 50 and all(g > 0 for g in curves["cross_entropy_grad_norm"])
    page.shot("losses")
    assert page.errors == []
    page.close()


def test_bad_values_and_bursts_get_a_message_never_a_trace(server, browser):
    page = Page(browser, server + "regression")
    page.wait_text("info", "Done")
    page.set("n", "99999")
    page.wait_text("message", "out of range")
    assert "n = 99999 is out of range: choose n in [10, 10000]" in page.text("message")
    page.set("n", "<b>abc</b>")                              # what a user typed is shown as text, not markup
    page.wait_text("message", "must be a number")
    assert "&lt;b&gt;abc&lt;/b&gt;" in page.text("message")
    page.set("n", "500")
    page.wait("() => Bokeh.documents[0].get_model_by_name('message').text == ''"
              " && Bokeh.documents[0].get_model_by_name('info').text.includes('Done')")
    page.page.evaluate("""() => { const m = Bokeh.documents[0].get_model_by_name('lr');
        for (let i = 0; i < 80; i++) m.value = 0.1 + i / 1000; }""")          # a burst: 80 changes at once
    page.wait_text("message", "too many requests")
    for name in ("message", "info"):
        assert "Traceback" not in page.text(name) and "internal error" not in page.text(name)
    assert status(server)[1] < 1.0
    assert page.errors == []
    page.close()


def test_two_tabs_are_independent_and_a_closed_tab_stops_its_run(server, browser):
    a, b = Page(browser, server + "softmax"), Page(browser, server + "softmax")
    a.set("epochs", "7")
    b.set("epochs", "15")
    b.set("loss", "mse")
    for page, epochs in ((a, 7), (b, 15)):
        page.wait("(n) => Bokeh.documents[0].get_model_by_name('rate').text.includes('done')"
                  " && Bokeh.documents[0].get_model_by_name('curves').data.epoch.length == n", epochs)
    ca, cb = a.data("curves"), b.data("curves")
    assert ca["epoch"] == list(range(1, 8)) and cb["epoch"] == list(range(1, 16))
    assert ca["loss"] != cb["loss"][:7]                      # each tab plots its own run
    a.close()
    b.close()
    c = Page(browser, server + "softmax")
    c.set("batch_size", 1)
    c.set("epochs", "200")                                   # a long run: about a minute on 2 cores
    c.wait("() => Bokeh.documents[0].get_model_by_name('rate').text.includes('epoch 2/200')", timeout=60000)
    s, seconds = status(server)
    assert s["runs"] == 1 and seconds < 1.0                  # training runs beside a responsive server
    c.page.get_by_role("button", name="Stop").click()        # the Stop button ends it
    wait_for_no_runs(server)
    c.wait_text("message", "stopped")
    n_stopped = len(c.data("curves")["epoch"])
    assert "/200" in c.text("rate") and "done" not in c.text("rate") and n_stopped < 200
    c.set("epochs", "199")                                   # a new long run …
    c.wait("() => Bokeh.documents[0].get_model_by_name('rate').text.includes('epoch 2/199')", timeout=60000)
    assert status(server)[0]["runs"] == 1
    c.close()                                                # … and closing the tab stops it
    wait_for_no_runs(server)
    s, seconds = status(server)
    assert s["runs"] == 0 and seconds < 1.0


def wait_for_no_runs(server, within=10.0):
    deadline = time.time() + within
    while time.time() < deadline and status(server)[0]["runs"]:
        time.sleep(0.1)
    assert status(server)[0]["runs"] == 0


def test_playgrounds_link_to_the_report(server, browser):
    page = Page(browser, server)
    page.page.locator("a").first.wait_for()                 # (the links live in Bokeh's shadow DOM)
    links = page.page.locator("a").evaluate_all("els => els.map(a => a.getAttribute('href'))")
    assert {"/regression", "/softmax", "/saddle", "/losses", "/report/index.html"} <= set(links)
    page.page.goto(server + "report/index.html#C2")
    assert "C2 verdict" in page.page.content()
    page.close()


def listening_address(port: int) -> str:
    """The local address a TCP port listens on, from /proc/net/tcp."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        addr, p = local.split(":")
        if int(p, 16) == port and state == "0A":
            return ".".join(str(int(addr[i:i + 2], 16)) for i in (6, 4, 2, 0))
    raise AssertionError(f"nothing listens on {port}")


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads /proc/net/tcp")
def test_binds_loopback_unless_told_and_refuses_bad_ports(tmp_path):
    proc, url = start_server(report=tmp_path)
    try:
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        assert url.startswith("http://127.0.0.1:") and listening_address(port) == "127.0.0.1"
        assert status(url)[0]["runs"] == 0
    finally:
        stop(proc)
    proc, url = start_server("--host", "0.0.0.0", report=tmp_path)
    try:
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        assert listening_address(port) == "0.0.0.0"
        deadline = time.monotonic() + 10
        while not any("reachable from other machines" in line for line in proc.log) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any("reachable from other machines" in line for line in proc.log), proc.log
    finally:
        stop(proc)
    r = subprocess.run([sys.executable, "-m", "linearnets", "lab", "--serve", "--no-browser", "--port", "70000"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--port 70000 is out of range" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("path", list(apps.APPS))
def test_each_page_loads_only_the_bokehjs_bundles_it_needs(path):
    """The pages load ``apps.BUNDLES`` (not WebGL, tables or MathJax): enough for every model they hold."""
    doc = Document()
    apps.APPS[path](doc)
    needed = bundle_for_objs_and_resources(doc.roots, Resources(mode="server")).js_files
    assert {Path(str(url).split("?")[0]).name.removesuffix(".min.js") for url in needed} <= set(apps.BUNDLES)
    html = server_html_page_for_session(SimpleNamespace(token="t", document=doc), Resources(mode="server"),
                                        doc.title, doc.template, doc.template_variables)
    loaded = re.findall(r'<script src="[^"]*/([\w-]+)\.min\.js', html)
    assert loaded == apps.BUNDLES


def test_limits_are_checked_on_the_server():
    assert compute.checked("epochs", "12") == 12
    for name, value, says in (("epochs", 0, "out of range"), ("epochs", 2.5, "whole number"),
                              ("lr", "nan", "out of range"), ("n", "x", "must be a number"),
                              ("batch_size", 10**6, "out of range")):
        with pytest.raises(compute.ConfigError, match=says):
            compute.checked(name, value)
    with pytest.raises(compute.ConfigError, match="not one of"):
        compute.choice("solver", "adam", "softmax_solver")
