"""The four playgrounds as Bokeh documents: controls, plots, and a :class:`Session` that runs the
library's solvers in a worker thread and streams what they emit into the page.

Bokeh was chosen because a Bokeh server already is what this needs: one document per browser
tab (independent sessions), a websocket that carries data-source updates as they happen,
``on_session_destroyed`` when a tab goes away, contour plots, and BokehJS shipped inside the
Python package (served by the server itself — works offline, no CDN). Every plotted source and
every part of the page written as HTML has a ``name`` so tests (and curious users) can read the
page's own data: ``Bokeh.documents[0].get_model_by_name("path").data``, ``….get_model_by_name("confusion").text``.
"""

from __future__ import annotations

import base64
import html
import struct
import threading
import time
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from functools import cache, partial

import numpy as np
from bokeh.core.templates import FILE
from bokeh.events import DoubleTap, Tap
from bokeh.layouts import column, row
from bokeh.models import (
    Button,
    ColumnDataSource,
    Div,
    FixedTicker,
    LinearAxis,
    LinearScale,
    Range1d,
    Select,
    Slider,
    Span,
    TextInput,
)
from bokeh.plotting import figure
from bokeh.plotting.contour import contour_data
from bokeh.resources import Resources
from bokeh.server.views.static_handler import StaticHandler
from bokeh.settings import settings

from ..errors import LinearnetsError
from . import PLAYGROUNDS, compute

EXECUTOR = ThreadPoolExecutor(max_workers=4, thread_name_prefix="playground")
MIN_INTERVAL_S = 0.05       # at most 20 run starts per second per session; faster changes coalesce
MAX_REQUESTS_PER_S = 50     # beyond this a session's requests are refused with a message

class Registry:
    """Sessions and runs alive on this server (``/status`` reports them)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sessions = 0
        self.runs = 0

    def add(self, what: str, delta: int):
        with self.lock:
            setattr(self, what, getattr(self, what) + delta)

    def snapshot(self) -> dict:
        with self.lock:
            return {"sessions": self.sessions, "runs": self.runs}


REGISTRY = Registry()
SHUTDOWN = threading.Event()      # set when the server stops: every run ends at its next step


class Session:
    """One browser tab's work. :meth:`start` cancels the run it makes obsolete (a new generation),
    runs ``job(emit, cancelled)`` in a worker thread and applies what it emits on the document's
    own loop (what arrives before the loop gets to it, in one update); :meth:`stop` cancels; a
    closed tab cancels everything it started."""

    def __init__(self, doc, message: Div):
        self.doc, self.message = doc, message
        self.generation = 0
        self.closed = False
        self.requests = deque()
        self.last_start = 0.0
        self.pending = None
        self.refused_at = -1e9
        self.lock = threading.Lock()
        REGISTRY.add("sessions", 1)
        doc.on_session_destroyed(self._destroyed)

    def _destroyed(self, context):
        self.closed = True
        self.generation += 1
        REGISTRY.add("sessions", -1)

    def say(self, text: str = "", error: bool = False):
        """Show ``text`` (escaped: it may quote what the user typed) above the playground."""
        text = html.escape(text)
        self.message.text = (f'<span style="color:#b42318">{text}</span>' if error else text)

    def request(self, make_job, on_emit, on_done):
        """A control changed: start the run it asks for, at most every ``MIN_INTERVAL_S`` (the latest
        request wins), refusing bursts above ``MAX_REQUESTS_PER_S`` with a message."""
        now = time.monotonic()
        while self.requests and now - self.requests[0] > 1.0:
            self.requests.popleft()
        self.requests.append(now)
        if len(self.requests) > MAX_REQUESTS_PER_S:
            self.refused_at = now                  # refused now; the latest request already pending still runs
            self.say(f"too many requests ({len(self.requests)} in the last second); this server allows "
                     f"{MAX_REQUESTS_PER_S} per second per page", error=True)
            return
        wait = self.last_start + MIN_INTERVAL_S - now
        if wait > 0:
            first = self.pending is None
            self.pending = (make_job, on_emit, on_done)
            if first:
                self.doc.add_timeout_callback(self._start_pending, int(wait * 1000) + 1)
            return
        self._start(make_job, on_emit, on_done)

    def _start_pending(self):
        if self.pending is not None:
            job, self.pending = self.pending, None
            self._start(*job)

    def _start(self, make_job, on_emit, on_done):
        self.last_start = time.monotonic()
        try:
            job = make_job()                       # settings are checked here, on the server
        except LinearnetsError as e:
            self.generation += 1                   # a bad value also stops the run it replaced
            self.say(str(e), error=True)
            return
        if time.monotonic() - self.refused_at > 2.0:  # a refusal stays on screen a moment
            self.say("")
        self.generation += 1
        gen = self.generation

        def cancelled():
            return self.closed or SHUTDOWN.is_set() or self.generation != gen

        def apply(fn, *args):
            if not cancelled():
                fn(*args)

        emitted = []                               # what the run emitted since the page was last updated

        def flush():
            with self.lock:
                batch = emitted[:]
                emitted.clear()
            if batch:
                apply(on_emit, batch)

        def emit(kind, payload):
            if cancelled():
                return
            with self.lock:
                emitted.append(payload)
                first = len(emitted) == 1
            if first:                              # one page update for all that arrives before it runs
                self.doc.add_next_tick_callback(flush)

        def work():
            if cancelled():                        # obsolete before a worker was free
                return
            REGISTRY.add("runs", 1)
            try:
                result = job(emit=emit, cancelled=cancelled)
            except compute.Cancelled:
                return
            except LinearnetsError as e:
                result = {"error": str(e)}
            except Exception as e:                 # never a stack trace in the page; the server keeps serving
                result = {"error": f"internal error: {type(e).__name__}: {e}"}
            finally:
                REGISTRY.add("runs", -1)
            if not cancelled():
                self.doc.add_next_tick_callback(partial(apply, on_done, result))

        EXECUTOR.submit(work)

    def stop(self):
        self.generation += 1
        self.pending = None


# A Bokeh server's page loads every BokehJS bundle (3.9 MB: WebGL, tables and MathJax included) because it
# cannot know what a document will use; the playgrounds use plots and widgets only, so their pages load
# BokehJS and its widgets (1.6 MB) and no more (a test checks that no playground needs another bundle).
BUNDLES = ["bokeh", "bokeh-widgets"]
PAGE = FILE.environment.from_string("{% extends base %}{% block js_resources %}{{ playground_js }}{% endblock %}")


@cache
def _page_js(mode: str) -> str:
    return Resources(mode=mode, root_url="/", path_versioner=StaticHandler.append_version,
                     components=BUNDLES).render_js()


def _page(doc):
    """Serve ``doc`` with the BokehJS bundles in ``BUNDLES`` only."""
    mode = settings.resources(default="server")
    if mode in ("server", "server-dev"):            # (BOKEH_RESOURCES asked for another source: Bokeh's own page)
        doc.template = PAGE
        doc.template_variables["playground_js"] = _page_js(mode)


def _frame(doc, name: str, body, session_message: Div):
    title, claims, teaches = PLAYGROUNDS[name]
    links = " · ".join(f'<a href="/report/index.html#{c}">{c} in the report</a>' for c in claims)
    head = Div(text=f'<h2 style="margin:4px 0">{title}</h2><p style="margin:2px 0">{teaches}.</p>'
                    f'<p style="margin:2px 0"><a href="/">all playgrounds</a> · {links}</p>', name="header")
    doc.add_root(column(head, session_message, body, sizing_mode="stretch_width"))
    doc.title = f"linearnets · {title}"
    _page(doc)


def _message() -> Div:
    return Div(text="", name="message", styles={"min-height": "1.4em"})


def _number(widget: TextInput) -> str:
    return widget.value.strip()


# --- 1. linear regression ----------------------------------------------------------------------

def regression(doc):
    message = _message()
    session = Session(doc, message)
    surface = compute.regression_surface()
    solver = Select(title="solver", value="gd", options=list(compute.CHOICES["regression_solver"]), name="solver")
    lr = Slider(title="learning rate", start=0.01, end=3.0, step=0.01, value=0.3, name="lr")
    batch = Slider(title="batch size (SGD, momentum)", start=1, end=200, step=1, value=10, name="batch_size")
    momentum = Slider(title="momentum", start=0.0, end=0.99, step=0.01, value=0.9, name="momentum")
    noise = Slider(title="noise σ", start=0.0, end=2.0, step=0.01, value=0.01, name="noise")
    n = TextInput(title="n (rows, 10 … 10 000)", value="1000", name="n")
    epochs = Slider(title="epochs (iterations for GD and Newton)", start=1, end=200, step=1, value=60, name="epochs")
    stop = Button(label="Stop", name="stop")
    info = Div(text="", name="info")

    contour = figure(title="F(w₁, w₂, b*) and the path", width=520, height=460, x_axis_label="w₁",
                     y_axis_label="w₂", name="surface_plot")
    optimum = ColumnDataSource({"w1": [], "w2": []}, name="optimum")

    def levels(sf):
        return np.geomspace(max(float(sf.F.min()), 1e-6) * 1.5, float(sf.F.max()), 14)

    def draw_surface(sf):
        surface_renderer.set_data(contour_data(sf.w1, sf.w2, sf.F, levels(sf), want_fill=False))
        optimum.data = {"w1": [float(sf.optimum[0])], "w2": [float(sf.optimum[1])]}
        contour.x_range.start, contour.x_range.end = float(sf.w1[0]), float(sf.w1[-1])
        contour.y_range.start, contour.y_range.end = float(sf.w2[0]), float(sf.w2[-1])

    path = ColumnDataSource({"w1": [], "w2": [], "step": []}, name="path")
    end = ColumnDataSource({"w1": [], "w2": []}, name="end")
    losses = ColumnDataSource({"step": [], "loss": []}, name="loss")
    curve = figure(title="F after each update", width=420, height=300, y_axis_type="log", x_axis_label="update",
                   y_axis_label="F (½·mean squared error)")
    curve.line("step", "loss", source=losses, line_width=2)
    surface_renderer = contour.contour(surface.w1, surface.w2, surface.F, levels(surface), line_color="#8c8c8c",
                                       line_alpha=0.6, fill_alpha=0)
    contour.scatter("w1", "w2", source=optimum, size=14, marker="star", color="#d62728",
                    legend_label="closed-form optimum")
    contour.line("w1", "w2", source=path, line_width=2, color="#1f77b4", legend_label="path")
    contour.scatter("w1", "w2", source=path, size=3, color="#1f77b4")
    contour.scatter("w1", "w2", source=end, size=10, color="#ff7f0e", legend_label="last point")
    state = {"surface": surface}
    draw_surface(surface)

    def settings():
        s = {"n": compute.checked("n", _number(n)), "noise": compute.checked("noise", noise.value),
             "lr": compute.checked("lr", lr.value), "batch_size": compute.checked("batch_size", batch.value),
             "momentum": compute.checked("momentum", momentum.value), "epochs": compute.checked("epochs", epochs.value),
             "solver": compute.choice("solver", solver.value, "regression_solver")}
        s["batch_size"] = min(s["batch_size"], s["n"])
        return s

    def make_job():
        s = settings()
        sf = compute.regression_surface(s["n"], s["noise"])
        if sf is not state["surface"]:
            state["surface"] = sf
            draw_surface(sf)
        path.data = {"w1": [], "w2": [], "step": []}
        losses.data = {"step": [], "loss": []}
        end.data = {"w1": [], "w2": []}
        verdict = ("below" if s["lr"] < sf.stable_lr else "above")
        info.text = (f"2/λ_max = <b>{sf.stable_lr:.3f}</b> (λ_max = {sf.lambda_max:.3f}): full-batch gradient descent "
                     f"converges for lr below it and diverges above (minibatches and momentum move the threshold; "
                     f"Newton has no lr). lr = {s['lr']:g} is <b>{verdict}</b> it. Running {s['solver']}…")
        return partial(compute.regression_run, sf, solver=s["solver"], lr=s["lr"], batch_size=s["batch_size"],
                       momentum=s["momentum"], epochs=s["epochs"], seed=0)

    def on_emit(batch):
        w1, w2, loss = ([x for p in batch for x in p[k]] for k in ("w1", "w2", "loss"))
        k0 = len(path.data["w1"])
        steps = list(range(k0, k0 + len(w1)))
        path.stream({"w1": w1, "w2": w2, "step": steps})
        losses.stream({"step": steps, "loss": loss})

    def on_done(result):
        if "error" in result:
            session.say(result["error"], error=True)
            return
        endpoint = result["end"]
        end.data = {"w1": [endpoint[0]], "w2": [endpoint[1]]}
        if result["diverged"]:
            info.text += (f'<br><span style="color:#b42318" name="diverged"><b>Diverged</b>: {result["diverged"]}. '
                          "The orange point is the last finite parameters.</span>")
        else:
            info.text += (f"<br>Done: {result['steps']} updates; distance to the optimum "
                          f"{result['distance_to_optimum']:.2e}.")

    def restart():
        session.request(make_job, on_emit, on_done)

    for w in (solver, lr, batch, momentum, noise, epochs, n):
        w.on_change("value", lambda attr, old, new: restart())
    stop.on_click(lambda: (session.stop(), session.say("stopped")))
    controls = column(solver, lr, batch, momentum, noise, n, epochs, stop, width=300)
    _frame(doc, "regression", row(controls, contour, column(curve, info, width=440)), message)
    restart()


# --- 2. softmax regression on digits -----------------------------------------------------------

def softmax(doc):
    message = _message()
    session = Session(doc, message)
    solver = Select(title="solver", value="sgd", options=list(compute.CHOICES["softmax_solver"]), name="solver")
    loss = Select(title="loss", value="cross_entropy", options=list(compute.CHOICES["loss"]), name="loss")
    lr = TextInput(title='learning rate ("curvature", "auto" or a number)', value="curvature", name="lr")
    batch = Slider(title="batch size (SGD)", start=1, end=1347, step=1, value=32, name="batch_size")
    epochs = TextInput(title="epochs (1 … 200)", value="30", name="epochs")
    stop = Button(label="Stop", name="stop")
    rate = Div(text="", name="rate")
    curves = ColumnDataSource({"epoch": [], "loss": [], "accuracy": [], "test_accuracy": [], "seconds": []},
                              name="curves")
    # Two plots, loss and accuracy together, per epoch and per second: each plot cost the page ~70 ms to build
    # on this 2-core machine, and the first epoch is to show within 1 s of opening it.
    per_epoch = _loss_and_accuracy(curves, "epoch", ("accuracy", "test_accuracy"), "per_epoch")
    per_second = _loss_and_accuracy(curves, "seconds", ("test_accuracy",), "per_second")
    # the end of a run as HTML (a table, 8×8 PNGs): nothing more for BokehJS to lay out
    confusion = Div(text="", name="confusion")
    wrong = Div(text="", name="wrong")

    state = {"loss": loss.value}

    def make_job():
        value = _number(lr)
        lr_value = value if value in ("auto", "curvature") else compute.checked("lr", value)
        s = {"solver": compute.choice("solver", solver.value, "softmax_solver"),
             "loss": compute.choice("loss", loss.value), "lr": lr_value,
             "batch_size": compute.checked("batch_size", batch.value), "epochs": compute.checked("epochs", _number(epochs))}
        curves.data = {k: [] for k in curves.data}
        confusion.text = wrong.text = ""
        rate.text = f"training {s['solver']} on {s['loss']}…"
        state["loss"], state["epochs"] = s["loss"], s["epochs"]
        return partial(compute.softmax_run, **s, seed=0)

    def on_emit(batch):
        curves.stream({k: [r[k] for r in batch] for k in curves.data})
        r = batch[-1]
        sps = r["samples_per_s"]
        rate.text = (f"{state['loss']}, epoch {r['epoch']}/{state['epochs']}: test accuracy <b>{r['test_accuracy']:.3f}</b>, {r['seconds']:.2f} s, "
                     + (f"{sps:,.0f} samples/s" if sps else ""))

    def on_done(result):
        if "error" in result or result.get("diverged"):
            session.say(result.get("error") or f"Diverged: {result['diverged']}", error=True)
            return
        confusion.text = _confusion_table(np.asarray(result["confusion"]))
        wrong.text = _digit_grid(result["wrong_images"], result["wrong_true"], result["wrong_pred"])
        rate.text += f"<br>done: test accuracy {result['test_accuracy']:.3f}, lr {result['lr']:.3g}"

    def restart():
        session.request(make_job, on_emit, on_done)

    for w in (solver, loss, lr, batch, epochs):
        w.on_change("value", lambda attr, old, new: restart())
    stop.on_click(lambda: (session.stop(), session.say("stopped")))
    controls = column(solver, loss, lr, batch, epochs, stop, rate, width=300)
    _frame(doc, "softmax", row(controls, column(row(per_epoch, per_second), row(confusion, wrong))), message)
    restart()


LOSS_TICKS = [m * 10.0 ** e for e in range(-6, 3) for m in (1, 2, 5)]
ACCURACIES = {"accuracy": ("train accuracy", "#2ca02c"), "test_accuracy": ("test accuracy", "#ff7f0e")}


def _loss_and_accuracy(curves, x: str, accuracies, name: str):
    """One plot against ``x`` (epoch or seconds): the training loss (log scale, left axis) and the
    ``accuracies`` (columns of ``ACCURACIES``; right axis, 0 … 1)."""
    per = {"epoch": "epoch", "seconds": "second"}[x]
    p = figure(title=f"loss and accuracy per {per}", width=420, height=320, x_axis_label=x, y_axis_type="log",
               y_axis_label="training loss", tools="pan,wheel_zoom,box_zoom,reset", name=name)
    p.extra_y_ranges = {"accuracy": Range1d(0, 1.02)}
    p.extra_y_scales = {"accuracy": LinearScale()}
    p.yaxis.ticker = FixedTicker(ticks=LOSS_TICKS)       # (BokehJS's own labelled only 0.5 and 1 on 0.07 … 1.2)
    p.add_layout(LinearAxis(y_range_name="accuracy", axis_label="accuracy"), "right")
    p.y_range.renderers = [p.line(x, "loss", source=curves, line_width=2, legend_label="training loss")]
    for column_name in accuracies:
        label, color = ACCURACIES[column_name]
        p.line(x, column_name, source=curves, line_width=2, color=color, legend_label=label, y_range_name="accuracy")
    p.add_layout(p.legend[0], "below")                  # under the plot: it never hides a curve
    p.legend[0].orientation = "horizontal"
    return p


def _confusion_table(m: np.ndarray) -> str:
    """The confusion matrix as an HTML table: rows true, columns predicted, darker for more."""
    top = max(int(m.max()), 1)
    head = "".join(f"<th>{j}</th>" for j in range(m.shape[1]))
    rows = []
    for i in range(m.shape[0]):
        cells = "".join(f'<td title="true {i}, predicted {j}" style="background:{_blue(int(v) / top)};'
                        f'{"font-weight:bold" if i == j else ""}">{int(v) if v else ""}</td>'
                        for j, v in enumerate(m[i]))
        rows.append(f"<tr><th>{i}</th>{cells}</tr>")
    return ('<b>confusion matrix (test)</b>: rows true, columns predicted'
            '<table style="border-collapse:collapse;text-align:center;font-size:9pt;margin-top:4px">'
            f'<tr><th></th>{head}</tr>{"".join(rows)}</table>'
            '<style>td, th {width:26px; height:22px; padding:0}</style>')


def _digit_grid(images, true, predicted) -> str:
    """The misclassified test digits as 8×8 PNGs (scaled up, pixels kept sharp), labelled true → predicted."""
    if not images:
        return "<b>misclassified test digits</b>: none"
    cells = "".join(f'<figure style="margin:2px;text-align:center"><img src="{_png(np.asarray(im))}" width="48" '
                    f'height="48" style="image-rendering:pixelated" title="true {t}, predicted {p}" alt="{t}→{p}">'
                    f'<figcaption style="font-size:9pt">{t}→{p}</figcaption></figure>'
                    for im, t, p in zip(images, true, predicted, strict=True))
    return ('<b>misclassified test digits</b> (true → predicted)'
            f'<div style="display:grid;grid-template-columns:repeat(4, 56px);margin-top:4px">{cells}</div>')


def _png(image: np.ndarray) -> str:
    """A grayscale image with values in [0, 1] (1 = ink, drawn black) as a PNG data URI."""
    gray = np.round(255 * (1 - np.clip(image, 0, 1))).astype(np.uint8)
    raw = b"".join(b"\x00" + row.tobytes() for row in gray)          # filter type 0 before each row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", gray.shape[1], gray.shape[0], 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _blue(t: float) -> str:
    v = int(255 - 180 * t)
    return f"#{v:02x}{v:02x}ff"


# --- 3. the saddle -----------------------------------------------------------------------------

def saddle(doc):
    message = _message()
    session = Session(doc, message)
    u, v, F = compute.saddle_surface()
    p = figure(title="F(u, v) = u² − v² + v⁴/4 — click a start point", width=560, height=520, x_axis_label="u",
               y_axis_label="v", x_range=(-2, 2), y_range=(-2.5, 2.5), name="saddle_plot")
    p.contour(u, v, F, np.linspace(-0.9, 4, 16), line_color="#9a9a9a", line_alpha=0.7, fill_alpha=0)
    p.scatter([0, 0, 0], [0, np.sqrt(2), -np.sqrt(2)], marker="x", size=12, color="black", legend_label="saddle, minima")
    sources = {}
    for name, color in (("newton", "#d62728"), ("gd", "#1f77b4"), ("sgd", "#2ca02c")):
        sources[name] = ColumnDataSource({"u": [], "v": []}, name=f"path_{name}")
        p.line("u", "v", source=sources[name], line_width=2, color=color, legend_label=name)
    p.add_layout(p.legend[0], "below")                  # off the plane: every point of it is clickable
    p.legend[0].orientation = "horizontal"
    start = ColumnDataSource({"u": [1.0], "v": [0.05]}, name="start")
    p.scatter("u", "v", source=start, size=10, color="black")
    ends = Div(text="", name="ends")

    def make_job():
        t = (float(start.data["u"][0]), float(start.data["v"][0]))
        return lambda emit, cancelled: compute.saddle_paths(t)

    def on_done(result):
        if "error" in result:
            session.say(result["error"], error=True)
            return
        for name, r in result.items():
            sources[name].data = {"u": r["u"], "v": r["v"]}
        ends.text = "<br>".join(f"<b>{name}</b> ends at ({r['end'][0]:.3g}, {r['end'][1]:.3g}): {r['ends_at']}, "
                                f"F = {r['F_end']:.3g}" for name, r in result.items())

    def tapped(event):
        start.data = {"u": [event.x], "v": [event.y]}
        session.request(make_job, lambda batch: None, on_done)

    p.on_event(Tap, tapped)
    p.on_event(DoubleTap, tapped)                        # two quick clicks are two start points, not a gesture
    _frame(doc, "saddle", row(p, column(ends, Div(text="Start on the u axis (v = 0) and gradient descent stays on "
                                                       "it, at the saddle; Newton goes to the saddle from anywhere "
                                                       "near it; SGD's noise pushes v off 0 and it escapes."),
                                         width=380)), message)
    session.request(make_job, lambda batch: None, on_done)


# --- 4. the losses -----------------------------------------------------------------------------

def losses(doc):
    message = _message()
    session = Session(doc, message)
    p_true = Slider(title="predicted probability of the true class", start=0.001, end=0.999, step=0.001,
                    value=0.8, name="p_true")
    classes = Slider(title="classes k", start=2, end=10, step=1, value=3, name="classes")
    others = Select(title="the other classes", value="uniform", options=["uniform", "one"], name="others")
    target = Select(title="target", value="one-hot", options=["one-hot", "smoothed"], name="target")
    right = Button(label="notes: ŷ = [0.1, 0.1, 0.8]", name="example_right")
    wrong = Button(label="notes: ŷ = [0.4, 0.4, 0.2]", name="example_wrong")
    values = ColumnDataSource({"loss": ["cross_entropy", "mse", "kl"], "value": [0, 0, 0], "grad_norm": [0, 0, 0]},
                              name="values")
    bars = figure(title="value and ‖∂loss/∂o‖ at this prediction", x_range=["cross_entropy", "mse", "kl"],
                  width=420, height=300)
    bars.vbar(x="loss", top="value", width=0.35, source=values, legend_label="value")
    bars.scatter("loss", "grad_norm", source=values, size=12, color="#d62728", legend_label="‖gradient‖")
    curves = ColumnDataSource({"p": [], **{f"{n}_{q}": [] for n in ("cross_entropy", "mse", "kl")
                                           for q in ("value", "grad_norm")}}, name="loss_curves")
    lc = figure(title="loss against p (true class)", width=420, height=300, x_axis_type="log", x_axis_label="p")
    gc = figure(title="‖gradient w.r.t. the logits‖ against p", width=420, height=300, x_axis_type="log",
                y_axis_type="log", x_axis_label="p")
    for name, color in (("cross_entropy", "#1f77b4"), ("mse", "#ff7f0e"), ("kl", "#2ca02c")):
        lc.line("p", f"{name}_value", source=curves, color=color, line_width=2, legend_label=name,
                line_dash="dashed" if name == "kl" else "solid")
        gc.line("p", f"{name}_grad_norm", source=curves, color=color, line_width=2, legend_label=name,
                line_dash="dashed" if name == "kl" else "solid")
    marks = [Span(location=0.8, dimension="height", line_color="black", line_dash="dotted") for _ in range(2)]
    lc.add_layout(marks[0])
    gc.add_layout(marks[1])
    table = Div(text="", name="loss_table")

    def make_job():
        s = (compute.checked("p_true", p_true.value), compute.checked("classes", classes.value), others.value,
             target.value)
        return lambda emit, cancelled: {"at": compute.loss_values(*s),
                                        "curves": compute.loss_curves(s[1], s[3])}

    def on_done(result):
        if "error" in result:
            session.say(result["error"], error=True)
            return
        at = result["at"]
        values.data = {"loss": ["cross_entropy", "mse", "kl"],
                       "value": [at[k]["value"] for k in ("cross_entropy", "mse", "kl")],
                       "grad_norm": [at[k]["grad_norm"] for k in ("cross_entropy", "mse", "kl")]}
        curves.data = result["curves"]
        for m in marks:
            m.location = at["p"][0]
        rows = "".join(f"<tr><td>{k}</td><td>{at[k]['value']:.4f}</td><td>{at[k]['grad_norm']:.4f}</td>"
                       f"<td>[{', '.join(f'{g:.3f}' for g in at[k]['grad'])}]</td></tr>"
                       for k in ("cross_entropy", "mse", "kl"))
        table.text = (f"ŷ = [{', '.join(f'{q:.3f}' for q in at['p'])}], y = [{', '.join(f'{q:.3f}' for q in at['target'])}]"
                      f"<table><tr><th>loss</th><th>value</th><th>‖∇‖</th><th>∂loss/∂o</th></tr>{rows}</table>"
                      "CE's gradient is ŷ − y; KL's equals it (they differ in value by H(y), 0 for one-hot).")

    def restart():
        session.request(make_job, lambda batch: None, on_done)

    def example(p):
        classes.value, others.value, target.value = 3, "uniform", "one-hot"
        p_true.value = p

    for w in (p_true, classes, others, target):
        w.on_change("value", lambda attr, old, new: restart())
    right.on_click(lambda: example(0.8))
    wrong.on_click(lambda: example(0.2))
    _frame(doc, "losses", row(column(p_true, classes, others, target, right, wrong, width=300),
                              column(row(bars, lc), row(gc, table))), message)
    restart()


def index(doc):
    items = "".join(f'<li><a href="/{name}"><b>{title}</b></a> ({", ".join(claims)}): {teaches}.</li>'
                    for name, (title, claims, teaches) in PLAYGROUNDS.items())
    doc.add_root(Div(text=f"<h1>linearnets · the interactive lab</h1><p>Turn the chapter's knobs and watch "
                          f"the library's own solvers respond. The measured verdicts: "
                          f'<a href="/report/index.html">the lab report</a>.</p><ul>{items}</ul>', name="index"))
    doc.title = "linearnets · interactive lab"
    _page(doc)


APPS = {"/": index, "/regression": regression, "/softmax": softmax, "/saddle": saddle, "/losses": losses}
