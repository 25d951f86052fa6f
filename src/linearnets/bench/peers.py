"""linearnets against its peers, side by side (issue 15): time to a test accuracy and samples/s.

Two workloads, each split into training and held-out test rows, every method on the same arrays:

  dense   the reference workload: 60 000 × 784 → 10 float32 (synthetic, Fashion-MNIST's shape;
          ``fashion_mnist_like``), 10 000 test rows
  sparse  text-like rows (``linearnets.data.synthetic.text_like``): 1 000 000 training rows,
          2^20 hashed features, ~50 non-zeros per row, Zipf feature frequencies, 20 classes;
          n/10 test rows

Peers (optional: ``pip install 'linearnets[bench]'``; a peer that is not installed is reported as such):

  Vowpal Wabbit   ``vowpalwabbit.Workspace`` (the VW driver in-process, as the ``vw`` command line):
                  ``--oaa k`` with its defaults (squared loss, adaptive normalised updates), with
                  ``--loss_function logistic``, and with ``--sgd`` (plain SGD updates);
                  the training rows are written once in VW's text format and turned into a VW cache
                  (``--noop``; not counted); each run reads that cache (counted) for 1, 2 and 3
                  passes (``--passes p --holdout_off``). Test accuracy from ``-t -i model``.
  Snap ML         ``snapml.LogisticRegression`` (one-vs-rest for k > 2), n_jobs = the machine's cores
  scikit-learn    ``SGDClassifier(loss="log_loss")`` (one-vs-rest, n_jobs = cores) and
                  ``LogisticRegression(solver="saga")`` (multinomial)

linearnets: ``SoftmaxRegression(solver="sgd")`` on the same arrays; a listener on the public step
events evaluates test accuracy 8 times per epoch with the current parameters, on a clock that is
stopped while it evaluates (evaluation not counted; a warm-up fit on a few batches first), and the
run ends once every peer's accuracy is reached (or after its epoch budget). For each peer:
linearnets' time to that peer's accuracy and the ratio peer time / linearnets time. Each peer's
time is its ``fit`` (VW: the driver run) alone; predicting the test rows is not counted for anyone.
Every time is the fastest of ``--repeats`` runs (dense, default 3) or ``--sparse-repeats`` (default
1): on a shared 2-core machine another process slows a 2-thread run many times over.

Targets (BENCHMARKS.md): on the sparse workload linearnets reaches VW's 3-pass test accuracy in at
most half of VW's time and Snap ML's accuracy in at most half of Snap ML's; on the dense workload
it is ≥ 10× faster than both.

    linearnets bench peers [--rows 1000000]    (or: python -m linearnets.bench.peers --help)
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, SGDClassifier

from ..data.synthetic import fashion_mnist_like, text_like
from ..estimators import SoftmaxRegression
from ..train import Callback
from .common import machine, table

PEERS = ("vw", "snapml", "sklearn", "linearnets")
NOT_INSTALLED = "not installed (pip install 'linearnets[bench]')"


def load() -> str:
    """The 1-minute load average (other processes on the machine skew every time here)."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                                  # not Linux
        return os.cpu_count() or 1


# --- workloads --------------------------------------------------------------------------------
@dataclass
class Workload:
    name: str
    X: np.ndarray | sp.csr_matrix           # (n, d) training rows
    y: np.ndarray                            # (n,) labels 0..k-1
    X_test: np.ndarray | sp.csr_matrix
    y_test: np.ndarray
    k: int
    settings: dict                           # how the peers and linearnets run on it (see dense_settings)

    @property
    def sparse(self) -> bool:
        return sp.issparse(self.X)

    def describe(self) -> str:
        n, d = self.X.shape
        kind = f"CSR, {self.X.nnz / n:.1f} non-zeros per row" if self.sparse else "dense"
        return f"{self.name}: {n:,} × {d:,} → {self.k} float32 ({kind}), {len(self.y_test):,} test rows"


def dense_settings(n: int) -> dict:
    lam = 1e-4
    return {"linearnets": {"lr": 0.1, "batch_size": 256, "epochs": 20},
            "vw_bits": 18, "lam": lam,
            "snapml": {"regularizer": 1.0, "max_iter": 10, "dual": True},
            "sgd": {"alpha": lam, "max_iter": 5},
            "saga": {"C": 1.0 / (n * lam), "max_iter": 10, "tol": 1e-3}}


def sparse_settings(n: int, d: int) -> dict:
    lam = 1e-6
    return {"linearnets": {"lr": 48.0, "batch_size": 64, "epochs": 2, "lr_schedule": "cosine"},
            "vw_bits": max(1, math.ceil(math.log2(d))), "lam": lam,
            "snapml": {"regularizer": 0.1, "max_iter": 10, "dual": True},
            "sgd": {"alpha": lam, "max_iter": 5},
            "saga": {"C": 1.0 / (n * lam), "max_iter": 10, "tol": 1e-3}}


def dense_workload(n: int = 60000, n_test: int | None = None, seed: int = 0) -> Workload:
    n_test = min(10000, max(500, n // 6)) if n_test is None else n_test      # 10 000 for the reference 60 000
    ds = fashion_mnist_like(n=n + n_test, seed=seed)
    return Workload("dense reference workload (synthetic Fashion-MNIST shape)", ds.X[:n], ds.y[:n],
                    ds.X[n:], ds.y[n:], 10, dense_settings(n))


def sparse_workload(n: int = 1_000_000, d: int = 2 ** 20, nnz: int = 50, k: int = 20, seed: int = 0) -> Workload:
    n_test = max(n // 10, 1000)
    X, y = text_like(n + n_test, d=d, nnz=nnz, k=k, seed=seed)
    return Workload("sparse text-like workload (text_like: Zipf, hashed)", X[:n], y[:n], X[n:], y[n:], k,
                    sparse_settings(n, d))


# --- results ----------------------------------------------------------------------------------
@dataclass
class Result:
    peer: str                    # "Vowpal Wabbit", "Snap ML", "scikit-learn", "linearnets"
    method: str                  # a short name: "VW --oaa, squared loss, 3 passes"
    how: str                     # exactly how it was run
    seconds: float | None = None
    passes: float | None = None  # passes over the training rows (epochs, iterations)
    accuracy: float | None = None
    note: str = ""               # "not installed", a ConvergenceWarning, ...
    target: bool = False         # an accuracy the verdicts use (VW 3 passes, Snap ML)
    lin_seconds: float | None = None   # linearnets' time to this accuracy (None: not reached)

    def samples_per_s(self, n: int) -> float | None:
        if self.seconds is None or self.passes is None or self.seconds <= 0:
            return None
        return n * self.passes / self.seconds

    @property
    def ratio(self) -> float | None:
        if self.seconds is None or self.lin_seconds is None or self.lin_seconds <= 0:
            return None
        return self.seconds / self.lin_seconds


@dataclass
class Trace:
    """linearnets' test accuracy along training: (seconds of training, samples seen, accuracy)."""

    points: list = field(default_factory=list)

    def time_to(self, accuracy: float) -> float | None:
        for seconds, _, acc in self.points:
            if acc >= accuracy:
                return seconds
        return None

    @property
    def best(self) -> float:
        return max((a for _, _, a in self.points), default=float("nan"))


def accuracy_of(Z: np.ndarray, y: np.ndarray, classes: np.ndarray | None = None) -> float:
    pred = np.argmax(Z, axis=1)
    return float(np.mean((pred if classes is None else classes[pred]) == y))


# --- linearnets -------------------------------------------------------------------------------
def as_tensor(X) -> torch.Tensor:
    """X (dense or scipy CSR) as a float32 torch tensor (CSR stays sparse). The evaluation runs in
    torch's thread pool: a NumPy/BLAS product in between SGD steps leaves BLAS threads spinning
    on the same cores and slows the training it interrupts."""
    if not sp.issparse(X):
        return torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
    X = sp.csr_matrix(X, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)            # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(torch.from_numpy(X.indptr.astype(np.int64)),
                                       torch.from_numpy(X.indices.astype(np.int64)), torch.from_numpy(X.data),
                                       size=X.shape, check_invariants=False)


class AccuracyTrace(Callback):
    """Test accuracy every ``every`` steps and after every epoch, from the public step and epoch
    events; the clock stops while it evaluates. ``on_epoch`` ends training once ``stop_at`` is
    reached."""

    def __init__(self, X_test, y_test, every: int, stop_at: float | None = None):
        self.X_test, self.y_test = as_tensor(X_test), torch.as_tensor(np.asarray(y_test))
        self.every, self.stop_at = max(1, every), stop_at
        self.trace, self.eval_seconds, self.samples, self.evaluated_at = Trace(), 0.0, 0, -1
        self.t0 = time.perf_counter()

    def start(self) -> None:
        self.t0, self.eval_seconds = time.perf_counter(), 0.0

    def _evaluate(self, params) -> float:
        t = time.perf_counter()
        trained = t - self.t0 - self.eval_seconds
        with torch.no_grad():
            W = params.W.detach().to(device="cpu", dtype=torch.float32)          # (d, k)
            Z = self.X_test @ W + params.b.detach().to(device="cpu", dtype=torch.float32)   # (n_test, k)
            acc = int((Z.argmax(dim=1) == self.y_test).sum()) / len(self.y_test)
        self.trace.points.append((trained, self.samples, acc))
        self.evaluated_at = self.samples
        self.eval_seconds += time.perf_counter() - t
        return acc

    def on_step(self, state, step):
        self.samples += step.samples
        if step.step % self.every == 0:
            self._evaluate(step.params)

    def on_epoch(self, state, record):
        acc = self._evaluate(state.params) if self.evaluated_at != self.samples else self.trace.points[-1][2]
        return self.stop_at is not None and acc >= self.stop_at

    @property
    def seconds(self) -> float:
        return self.trace.points[-1][0] if self.trace.points else float("nan")


def sparse_supported() -> bool:
    """Whether this build's SoftmaxRegression fits scipy.sparse CSR input."""
    X = sp.csr_matrix(np.eye(4, dtype=np.float32))
    try:
        SoftmaxRegression(solver="sgd", epochs=1).fit(X, np.array([0, 1, 0, 1]))
    except Exception:        # noqa: BLE001 — any refusal means: not supported by this build
        return False
    return True


def run_linearnets(w: Workload, targets: list[float], *, evals_per_epoch: int = 8,
                   repeats: int = 1) -> tuple[Result, Trace | None]:
    """``repeats`` runs (the same seed: the same iterates and accuracies); each evaluation point's
    time is the fastest of the runs."""
    s = w.settings["linearnets"]
    schedule = s.get("lr_schedule", "constant")
    how = (f"SoftmaxRegression(solver='sgd', lr={s['lr']}, batch_size={s['batch_size']}, "
           + (f"lr_schedule='{schedule}', " if schedule != "constant" else "") +
           f"epochs≤{s['epochs']}, seed=0).fit(X, y, callbacks=[test accuracy {evals_per_epoch}× per epoch])")
    if w.sparse and not sparse_supported():
        return Result("linearnets", "linearnets SGD", how, note="not available (sparse input not supported by "
                      "this build)"), None
    steps = math.ceil(w.X.shape[0] / s["batch_size"])
    traces, note = [], ""
    for _ in range(repeats):
        listener = AccuracyTrace(w.X_test, w.y_test, every=math.ceil(steps / evals_per_epoch),
                                 stop_at=max(targets) if targets else None)
        model = SoftmaxRegression(solver="sgd", lr=s["lr"], batch_size=s["batch_size"], epochs=s["epochs"],
                                  lr_schedule=schedule, seed=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warm = min(w.X.shape[0], 4 * s["batch_size"])          # warm-up: torch's first calls (not counted)
            SoftmaxRegression(solver="sgd", lr=s["lr"], batch_size=s["batch_size"], epochs=1).fit(w.X[:warm],
                                                                                                   w.y[:warm])
            listener.start()
            model.fit(w.X, w.y, callbacks=[listener])
        traces.append(listener.trace)
        score = model.score(w.X_test, w.y_test)                 # the estimator's own accuracy, same parameters
        if listener.trace.points and abs(score - listener.trace.points[-1][2]) > 1e-9:
            note = f"estimator score {score:.4f} ≠ traced {listener.trace.points[-1][2]:.4f}"
    trace = Trace([(min(t.points[i][0] for t in traces), *traces[0].points[i][1:])
                   for i in range(min(len(t.points) for t in traces))])
    if any([p[1:] for p in t.points] != [p[1:] for p in traces[0].points] for t in traces):
        note = (note + "; " if note else "") + "runs differ (accuracies of the first run shown)"
    if not trace.points:
        return Result("linearnets", "linearnets SGD", how, note="no evaluation"), None
    seconds, seen, acc = trace.points[-1]
    label = f"linearnets SGD (lr {s['lr']:g}{', ' + schedule if schedule != 'constant' else ''}, batch {s['batch_size']})"
    return Result("linearnets", label, how,
                  seconds=seconds, passes=seen / w.X.shape[0], accuracy=acc, note=note), trace


def fastest(fn, repeats: int) -> tuple[float, object]:
    """The shortest time of ``repeats`` calls of fn() and that call's result."""
    best = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - t0
        if best is None or seconds < best[0]:
            best = (seconds, out)
    return best


# --- Vowpal Wabbit ----------------------------------------------------------------------------
def write_vw(path: Path, X, y, *, chunk_rows: int = 100_000) -> None:
    """Rows in VW's text format, ``label |f index:value ...`` (labels 1..k, zeros left out; values
    as float32's shortest round-trip decimal, so VW reads the same numbers)."""
    columns = np.char.add(np.arange(X.shape[1]).astype("S"), b":")              # (d,) b"j:"
    with open(path, "wb") as f:
        for start in range(0, X.shape[0], chunk_rows):
            Xc = sp.csr_matrix(X[start:start + chunk_rows], dtype=np.float32)
            m = Xc.shape[0]
            values, which = np.unique(Xc.data, return_inverse=True)            # few distinct values
            text = np.array([str(v) for v in values], dtype="S")              # np.float32's str: shortest
            tokens = np.char.add(columns[Xc.indices], text[which])             # (nnz,) b"j:v"
            heads = np.char.add((np.asarray(y[start:start + chunk_rows]) + 1).astype("S"), b" |f")  # (m,)
            at_head = Xc.indptr[:-1] + np.arange(m)                            # each row: its head, then its tokens
            is_head = np.zeros(len(tokens) + m, dtype=bool)
            is_head[at_head] = True
            cells = np.empty(len(is_head), dtype=f"S{max(tokens.itemsize, heads.itemsize) + 1}")
            cells[is_head] = np.char.add(heads, b" ")
            cells[~is_head] = np.char.add(tokens, b" ")
            ends = at_head + np.diff(Xc.indptr)                                # a row's last cell ends its line
            cells[ends] = np.char.add(np.char.rstrip(cells[ends], b" "), b"\n")
            f.write(cells.tobytes().replace(b"\x00", b""))


VW_VARIANTS = (("squared loss", ""),                                  # --oaa's defaults
               ("logistic loss", " --loss_function logistic"),
               ("plain SGD", " --sgd"))                                # no adaptive/normalised/invariant updates


def run_vw(w: Workload, workdir: Path, *, passes=(1, 2, 3), variants=VW_VARIANTS, repeats: int = 1) -> tuple[list, str]:
    try:
        from vowpalwabbit import Workspace  # optional peer (the bench extra); CI does not install it
    except ImportError:
        return [Result("Vowpal Wabbit", "VW --oaa", "", note=NOT_INSTALLED)], ""
    train, test, cache = workdir / "train.vw", workdir / "test.vw", workdir / "train.cache"
    t0 = time.perf_counter()
    write_vw(train, w.X, w.y)
    write_vw(test, w.X_test, w.y_test)
    t_text = time.perf_counter() - t0
    base = f"--oaa {w.k} -b {w.settings['vw_bits']} --quiet"
    cache.unlink(missing_ok=True)
    t0 = time.perf_counter()
    Workspace(f"{base} --noop -d {train} --cache_file {cache}").finish()
    t_cache = time.perf_counter() - t0
    info = (f"VW: text files written in {t_text:.1f} s and the cache made from them ('{base} --noop -d train.vw "
            f"--cache_file train.cache', {cache.stat().st_size / 2**20:.0f} MiB) in {t_cache:.1f} s — both "
            f"not counted; each VW time below includes reading that cache")
    results = []
    for i, (label, extra) in enumerate(variants):
        for p in passes:
            model, pred = workdir / f"model-{i}-{p}.vw", workdir / "pred.txt"
            args = f"{base}{extra} --cache_file {cache} --passes {p} --holdout_off -f {model}"
            seconds = math.inf
            for _ in range(repeats):
                t0 = time.perf_counter()
                ws = Workspace(args)                   # reads the cache and learns all passes
                seconds = min(seconds, time.perf_counter() - t0)
                ws.finish()                            # writes the model (not counted)
            Workspace(f"-t -i {model} -d {test} -p {pred} --quiet").finish()
            acc = float(np.mean(np.loadtxt(pred).reshape(-1).astype(np.int64) - 1 == w.y_test))
            results.append(Result("Vowpal Wabbit", f"VW --oaa, {label}, {p} pass{'es' if p > 1 else ''}",
                                  f"vowpalwabbit.Workspace('{args.replace(str(workdir) + '/', '')}')",
                                  seconds=seconds, passes=p, accuracy=acc, target=p == max(passes)))
    return results, info


# --- Snap ML ----------------------------------------------------------------------------------
def run_snapml(w: Workload, repeats: int = 1) -> list:
    try:
        from snapml import LogisticRegression as SnapLR  # optional peer (the bench extra); CI does not install it
    except ImportError:
        return [Result("Snap ML", "Snap ML LogisticRegression", "", note=NOT_INSTALLED)]
    s = dict(w.settings["snapml"], n_jobs=cores(), fit_intercept=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seconds, model = fastest(lambda: SnapLR(**s).fit(w.X, w.y), repeats)
    acc = float(np.mean(np.asarray(model.predict(w.X_test)).reshape(-1) == w.y_test))
    iters = getattr(model, "n_iter_", None)
    iters = float(np.max(iters)) if iters is not None else float(s["max_iter"])
    how = "snapml.LogisticRegression(" + ", ".join(f"{k}={v!r}" for k, v in s.items()) + ").fit(X, y)"
    return [Result("Snap ML", "Snap ML LogisticRegression", how, seconds=seconds, passes=iters, accuracy=acc,
                   target=True)]


# --- scikit-learn -----------------------------------------------------------------------------
def run_sklearn(w: Workload, repeats: int = 1) -> list:
    out = []
    sgd = dict(loss="log_loss", **w.settings["sgd"], tol=None, n_jobs=cores(), random_state=0)
    saga = dict(solver="saga", **w.settings["saga"], random_state=0)
    for name, cls, kw in (("scikit-learn SGDClassifier", SGDClassifier, sgd),
                          ("scikit-learn LogisticRegression saga", LogisticRegression, saga)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            seconds, model = fastest(lambda: cls(**kw).fit(w.X, w.y), repeats)
        note = "stopped at max_iter (ConvergenceWarning)" if any(
            issubclass(c.category, ConvergenceWarning) for c in caught) else ""
        acc = float(np.mean(model.predict(w.X_test) == w.y_test))
        how = f"{cls.__name__}(" + ", ".join(f"{k}={v!r}" for k, v in kw.items()) + ").fit(X, y)"
        out.append(Result("scikit-learn", name, how, seconds=seconds, passes=float(np.max(model.n_iter_)),
                          accuracy=acc, note=note))
    return out


# --- one workload, all peers ------------------------------------------------------------------
@dataclass
class Report:
    workload: Workload
    results: list                # Result, peers first, linearnets last
    trace: Trace | None
    info: list[str]
    verdicts: list[tuple[str, str]]   # (what, "met (…)" / "not met (…)" / "not measured (…)")

    def rows(self) -> list[tuple]:
        n = self.workload.X.shape[0]
        rows = []
        for r in self.results:
            sps = r.samples_per_s(n)
            lin = r.lin_seconds
            reach = "—" if r.peer == "linearnets" or r.accuracy is None else (
                f"{lin:.2f}" if lin is not None else "not reached" if self.trace is not None else "—")
            rows.append((r.method, f"{r.seconds:.2f}" if r.seconds is not None else "—",
                         f"{sps:,.0f}" if sps else "—",
                         f"{r.accuracy:.4f}" if r.accuracy is not None else r.note or "—",
                         reach, f"{r.ratio:.1f}×" if r.ratio is not None else "—"))
        return rows

    def table(self) -> str:
        return table(self.rows(), ("method", "seconds", "samples/s", "test accuracy",
                                   "linearnets s to it", "peer s / linearnets s"))

    def how(self) -> str:
        lines = [f"  {r.method}: {r.how}" + (f"  [{r.note}]" if r.note else "") for r in self.results if r.how]
        return "\n".join(lines)


def run_workload(w: Workload, *, peers=PEERS, workdir: Path | None = None, goal: float = 2.0,
                 evals_per_epoch: int = 8, repeats: int = 1) -> Report:
    """Every peer of ``peers``, then linearnets to each peer's accuracy; ``goal``: the speed-up the
    verdicts ask for (2 on the sparse workload, 10 on the dense one). Every time is the fastest of
    ``repeats`` runs (for linearnets: of each evaluation point)."""
    unknown = set(peers) - set(PEERS)
    if unknown:
        raise ValueError(f"unknown peers {sorted(unknown)}; choose from {', '.join(PEERS)}")
    results, info = [], []
    if "vw" in peers:
        with tempfile.TemporaryDirectory(prefix="linearnets-vw-", dir=workdir) as tmp:
            vw, line = run_vw(w, Path(tmp), repeats=repeats)
        results += vw
        info += [line] if line else []
    if "snapml" in peers:
        results += run_snapml(w, repeats)
    if "sklearn" in peers:
        results += run_sklearn(w, repeats)
    trace = None
    if "linearnets" in peers:
        targets = [r.accuracy for r in results if r.accuracy is not None]
        ours, trace = run_linearnets(w, targets, evals_per_epoch=evals_per_epoch, repeats=repeats)
        if trace is not None:
            for r in results:
                if r.accuracy is not None:
                    r.lin_seconds = trace.time_to(r.accuracy)
            info.append(f"linearnets: test accuracy at each evaluation ({evals_per_epoch} per epoch; evaluation "
                        "not counted): " + ", ".join(f"{a:.4f} @ {t:.2f} s" for t, _, a in trace.points))
        results.append(ours)
    verdicts = []
    for r in results:
        if not r.target:
            continue
        what = f"linearnets reaches {r.method}'s accuracy ({r.accuracy:.4f}) in ≤ 1/{goal:g} of its time"
        if trace is None:
            verdicts.append((what, "not measured (linearnets did not run on this workload)"))
        elif r.lin_seconds is None:
            verdicts.append((what, f"not met (not reached; best {trace.best:.4f})"))
        else:
            verdicts.append((what, f"{'met' if r.ratio >= goal else 'not met'} ({r.ratio:.1f}× faster: "
                                   f"{r.lin_seconds:.2f} s vs {r.seconds:.2f} s)"))
    for r in results:
        if r.peer in ("Vowpal Wabbit", "Snap ML") and r.note == NOT_INSTALLED:
            verdicts.append((f"against {r.peer}", "not measured (not installed)"))
    return Report(w, results, trace, info, verdicts)


def print_report(rep: Report) -> None:
    print(f"\n{rep.workload.describe()}")
    print(rep.table())
    for line in rep.info:
        print(line)
    print("how each was run:")
    print(rep.how())
    for what, verdict in rep.verdicts:
        print(f"target: {what}: {verdict}")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="linearnets bench peers", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="training rows of the sparse workload")
    ap.add_argument("--features", type=int, default=2 ** 20, help="hashed features of the sparse workload")
    ap.add_argument("--dense-rows", type=int, default=60000, help="training rows of the dense workload")
    ap.add_argument("--workloads", default="dense,sparse", help="dense, sparse or both (default)")
    ap.add_argument("--peers", default=",".join(PEERS), help=f"a subset of {','.join(PEERS)}")
    ap.add_argument("--lr", type=float, help="linearnets' learning rate on the sparse workload (default 48)")
    ap.add_argument("--batch-size", type=int, help="linearnets' batch size on the sparse workload (default 64)")
    ap.add_argument("--dir", help="where VW's text and cache files go (default: the system's temporary folder)")
    ap.add_argument("--repeats", type=int, default=3, help="dense workload: every time is the fastest of this "
                    "many runs (default 3)")
    ap.add_argument("--sparse-repeats", type=int, default=1, help="the same on the sparse workload (default 1)")
    ap.add_argument("--evals-per-epoch", type=int, default=8, help="linearnets' test evaluations per epoch "
                    "(the resolution of its time to an accuracy; default 8)")
    args = ap.parse_args(argv)
    if min(args.rows, args.features, args.dense_rows, args.repeats, args.sparse_repeats, args.evals_per_epoch) < 1:
        ap.error("--rows, --features, --dense-rows, --repeats, --sparse-repeats and --evals-per-epoch must be "
                 "positive")
    peers = tuple(p for p in args.peers.split(",") if p)
    print(f"{machine()}; {cores()} cores for the peers' n_jobs")
    reports = {}
    for name in (x for x in args.workloads.split(",") if x):
        t0 = time.perf_counter()
        if name == "dense":
            w, goal, repeats = dense_workload(args.dense_rows), 10.0, args.repeats
        elif name == "sparse":
            w, goal, repeats = sparse_workload(args.rows, d=args.features), 2.0, args.sparse_repeats
            if args.lr is not None:
                w.settings["linearnets"]["lr"] = args.lr
            if args.batch_size is not None:
                w.settings["linearnets"]["batch_size"] = args.batch_size
        else:
            raise SystemExit(f"unknown workload {name!r}; use dense, sparse")
        print(f"\n[{name}: data made in {time.perf_counter() - t0:.1f} s; load average {load()}]", flush=True)
        reports[name] = rep = run_workload(w, peers=peers, workdir=Path(args.dir) if args.dir else None, goal=goal,
                                           evals_per_epoch=args.evals_per_epoch, repeats=repeats)
        print_report(rep)
        print(f"[{name}: {time.perf_counter() - t0:.0f} s in all, fastest of {repeats} run{'s' * (repeats > 1)} "
              f"each; load average {load()}]", flush=True)
    return reports


if __name__ == "__main__":
    main()
