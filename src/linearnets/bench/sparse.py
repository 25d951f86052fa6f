"""Sparse rows, measured: the cost of an SGD step against the width d, and peak memory.

steps   Minibatch SGD (batch 256, k = 20 classes) on rows of exactly 50 non-zeros at uniformly
        random columns of d = 2^18 … 2^22 features (100 000 rows, one epoch per setting, in this
        process). The time of a step is the interval between consecutive step events (public
        ``Callback.on_step``; the listener does not read the parameters, so nothing is formed
        O(d·k)); the table gives the median over the epoch, and the epoch's own samples/s (which
        includes the O(d·k) work done once per epoch: copying W in and out). Plain SGD, and SGD with
        momentum 0.9 and weight decay 1e-5 (rows lag and are brought up to date lazily).

memory  Peak resident memory of a fresh process (VmHWM: Python, PyTorch, the data, the model)
        fitting the sparse reference workload — ``text_like``: 1 000 000 rows, 2^20 hashed features,
        ~50 non-zeros per row, Zipf feature frequencies, 20 classes — with SGD for 3 epochs, loaded
        from an .npz in memory; then streaming 4× the rows from a folder of svmlight files.

    linearnets bench sparse [--which steps memory] [--rows 1000000] [--dir /tmp/linearnets-sparse]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.datasets import dump_svmlight_file

from ..data import open_shards
from ..data.synthetic import text_like
from ..estimators import SoftmaxRegression
from ..train import Callback
from .common import machine, table


class StepClock(Callback):
    """Times between consecutive step events (the listener reads no parameters)."""

    def on_train_begin(self, state, epochs):
        self.times = []

    def on_step(self, state, step):
        self.times.append(time.perf_counter())

    def median_ms(self) -> float:
        return float(np.median(np.diff(self.times))) * 1e3


def uniform_rows(n: int, d: int, nnz: int, k: int, seed: int = 0) -> tuple[sp.csr_matrix, np.ndarray]:
    """n rows of exactly ``nnz`` non-zeros (value 1/√nnz) at uniform random columns of d; random labels."""
    rng = np.random.default_rng(seed)
    cols = rng.integers(0, d, size=(n, nnz))
    cols.sort(axis=1)
    X = sp.csr_matrix((np.full(n * nnz, nnz ** -0.5, np.float32), cols.ravel(), np.arange(0, n * nnz + 1, nnz)),
                      shape=(n, d))
    return X, rng.integers(0, k, size=n)


def steps(widths=(18, 20, 22), n: int = 100_000, nnz: int = 50, k: int = 20) -> dict:
    rows, out = [], {}
    for label, kw in (("plain", {}), ("momentum 0.9, weight decay 1e-5", {"momentum": 0.9, "weight_decay": 1e-5})):
        for p in widths:
            X, y = uniform_rows(n, 2 ** p, nnz, k)
            clock = StepClock()
            model = SoftmaxRegression(solver="sgd", lr=0.5, batch_size=256, epochs=1, **kw)
            model.fit(X, y, callbacks=[clock])
            ms = clock.median_ms()
            out[(label, p)] = ms
            rows.append((label, f"2^{p}", f"{ms:.3f}", f"{model.history_[0]['samples_per_s']:,.0f}"))
    ratios = {label: out[(label, widths[-1])] / out[(label, widths[0])] for label, _ in out}
    print(table(rows, ("sgd", "d", "median step ms", "epoch samples/s")))
    for label, r in ratios.items():
        print(f"{label}: step time at d = 2^{widths[-1]} / at 2^{widths[0]} = {r:.2f} (target ≤ 1.5)")
    return {"steps_ms": {f"{a} d=2^{b}": v for (a, b), v in out.items()}, "ratios": ratios}


def child(mode: str, path: str) -> dict:
    """One fit in this process: ``mode`` "memory" (an .npz) or "stream" (a folder of svmlight files)."""
    t0 = time.perf_counter()
    model = SoftmaxRegression(solver="sgd", lr=0.5, batch_size=256, epochs=3)
    if mode == "memory":
        data = np.load(path)
        X = sp.csr_matrix((data["data"], data["indices"], data["indptr"]), shape=tuple(data["shape"]))
        model.fit(X, data["y"])
    else:
        model.fit(open_shards(path, buffer_rows=65536, block_rows=4096))
    seconds = time.perf_counter() - t0
    hwm = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    return {"mode": mode, "seconds": seconds, "peak_mib": hwm / 1024, "loss": model.history_[-1]["loss"]}


def write_workload(folder: Path, n: int) -> tuple[Path, Path]:
    """The workload's rows: n rows as an .npz (in memory) and 4n rows as svmlight shards."""
    folder.mkdir(parents=True, exist_ok=True)
    npz, shards = folder / f"rows-{n}.npz", folder / f"svm-{4 * n}"
    if not npz.exists():
        X, y = text_like(n, seed=0)
        np.savez(npz, data=X.data, indices=X.indices, indptr=X.indptr, shape=np.array(X.shape), y=y)
    if not (shards / "COMPLETE").exists():
        shards.mkdir(exist_ok=True)
        for i in range(4):
            X, y = text_like(n, seed=1 + i)
            dump_svmlight_file(X, y, str(shards / f"part{i}.svm"))
        (shards / "COMPLETE").write_text("")
    return npz, shards


def memory(n: int, folder: Path) -> dict:
    npz, shards = write_workload(folder, n)
    results = {}
    for mode, path in (("memory", npz), ("stream", shards)):
        r = subprocess.run([sys.executable, "-m", "linearnets.bench.sparse", "--child", mode, str(path)],
                           capture_output=True, text=True, check=True)
        results[mode] = json.loads(r.stdout.strip().splitlines()[-1])
    rows = [(m, f"{r['peak_mib']:,.0f}", f"{r['seconds']:.1f}", f"{r['loss']:.4f}") for m, r in results.items()]
    print(table(rows, ("fit (3 epochs)", "peak RSS MiB", "seconds", "last loss")))
    ratio = results["stream"]["peak_mib"] / results["memory"]["peak_mib"]
    print(f"in memory: {results['memory']['peak_mib']:,.0f} MiB (target ≤ 2048); streamed 4× rows / in memory = "
          f"{ratio:.2f} (target ≤ 1.10)")
    return {**results, "stream_over_memory": ratio}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="linearnets bench sparse")
    p.add_argument("--which", nargs="*", default=["steps", "memory"], choices=["steps", "memory"])
    p.add_argument("--rows", type=int, default=1_000_000, help="rows of the in-memory workload (streamed: 4×)")
    p.add_argument("--dir", default="/tmp/linearnets-sparse", help="where the workload's files are written")
    p.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0
    print(f"machine: {machine()}")
    if "steps" in args.which:
        steps()
    if "memory" in args.which:
        memory(args.rows, Path(args.dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
