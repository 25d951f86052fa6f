"""Larger than memory, measured: peak memory and throughput of streamed SGD (issue: scale).

For each row count N (default 1 000 000 and 4 000 000) it writes NPY shards of N × 785
float32 (784 pixel-like features and a label; 250 000 rows per shard, ~784 MB each) under
``--dir``, then runs in a *fresh process* one epoch of streamed SGD (batch 256, shuffle
buffer 16 384 rows, blocks of 4 096 rows) and reports that process's peak resident memory
(VmHWM: the whole process — Python, PyTorch, buffers). Peak memory must not grow with N.

Throughput: on the first size, one epoch of in-memory training (all rows loaded into a
float32 tensor) against one epoch streamed from the same files, already in the page cache
(they were just read); samples/s from the epoch's own timer, side by side.

    linearnets bench stream [--rows 1000000 4000000] [--dir /tmp/linearnets-stream] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..data import open_shards
from ..data.synthetic import smooth_prototypes
from ..estimators import SoftmaxRegression
from .common import machine, table

SHARD_ROWS = 250_000


def write_shards(folder: Path, n: int, *, shard_rows: int = SHARD_ROWS, seed: int = 0) -> Path:
    """n rows of Fashion-MNIST-shaped data as NPY shards (784 float32 features + label column)."""
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / "COMPLETE"
    if marker.exists() and marker.read_text() == str(n):
        return folder
    for old in folder.glob("*.npy"):
        old.unlink()
    P = smooth_prototypes(10, 28, np.random.default_rng(seed)).astype(np.float32)    # fixed classes
    for i, start in enumerate(range(0, n, shard_rows)):
        m = min(shard_rows, n - start)
        rng = np.random.default_rng([seed, i])
        y = rng.integers(0, 10, size=m)
        other = (y + rng.integers(1, 10, size=m)) % 10
        scale = rng.uniform(0.5, 1.1, size=(m, 1)).astype(np.float32)
        out = np.lib.format.open_memmap(folder / f"part{i:04d}.npy", mode="w+", dtype=np.float32, shape=(m, 785))
        for s in range(0, m, 16384):
            sl = slice(s, min(m, s + 16384))
            eps = rng.standard_normal((sl.stop - sl.start, 784), dtype=np.float32)
            X = np.clip(scale[sl] * P[y[sl]] + 0.4 * P[other[sl]] + 0.25 * eps, 0.0, 1.0)
            out[sl, :784] = np.round(X * 255.0) / 255.0
            out[sl, 784] = y[sl]
        out.flush()
        del out
    marker.write_text(str(n))
    return folder


def _vm(key: str) -> int:
    """A /proc/self/status figure in KiB (0 where there is none)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def child(folder: str, mode: str) -> dict:
    """One epoch in this process; returns timings and the process's peak RSS."""
    t0 = time.perf_counter()
    model = SoftmaxRegression(solver="sgd", lr=0.1, batch_size=256, epochs=1)
    if mode == "stream":
        shards = open_shards(folder, buffer_rows=16384, block_rows=4096)
        model.fit(shards)
        n = shards.n
    else:
        shards = open_shards(folder)
        blocks = list(shards.blocks(65536))
        X = np.concatenate([b[0] for b in blocks])
        y = np.concatenate([b[1] for b in blocks]).astype(np.int64)
        del blocks
        n = len(y)
        model.fit(X, y)
    record = model.history_[0]
    return {"mode": mode, "rows": n, "epoch_s": record["seconds"], "samples_per_s": record["samples_per_s"],
            "train_accuracy": record.get("accuracy"), "total_s": time.perf_counter() - t0,
            "peak_rss_mib": _vm("VmHWM") / 1024, "threads": torch.get_num_threads()}


def run_child(folder: Path, mode: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "linearnets.bench.stream", "--child", str(folder), mode],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark child failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _read_all(folder: Path) -> float:
    """Read every shard once (warms the page cache); returns GB/s."""
    t0, total = time.perf_counter(), 0
    for p in sorted(folder.glob("*.npy")):
        with open(p, "rb") as f:
            while chunk := f.read(64 << 20):
                total += len(chunk)
    return total / (time.perf_counter() - t0) / 1e9


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="linearnets bench stream", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 4_000_000])
    parser.add_argument("--dir", default=os.environ.get("LINEARNETS_BENCH_DIR", "/tmp/linearnets-stream"))
    parser.add_argument("--keep", action="store_true", help="keep the shards for the next run")
    parser.add_argument("--child", nargs=2, metavar=("FOLDER", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    root = Path(args.dir)
    print(f"workload: N × 784 float32 → 10 classes, SGD batch 256, one epoch; {machine()}")
    rows, results = [], {}
    for n in args.rows:
        folder = root / f"rows-{n}"
        t0 = time.perf_counter()
        write_shards(folder, n)
        size = sum(p.stat().st_size for p in folder.glob("*.npy")) / 1e9
        print(f"  {n} rows: {size:.2f} GB of shards ready in {time.perf_counter() - t0:.0f} s", flush=True)
        gbps = _read_all(folder)
        r = run_child(folder, "stream")
        results[n] = r
        rows.append((f"{n:,}", f"{size:.2f}", f"{r['peak_rss_mib']:.0f}", f"{r['epoch_s']:.1f}",
                     f"{r['samples_per_s']:,.0f}", f"{gbps:.1f}"))
    print(table(rows, ("rows", "GB on disk", "peak RSS MiB", "epoch s", "samples/s", "cached read GB/s")))
    peaks = [results[n]["peak_rss_mib"] for n in args.rows]
    print(f"peak RSS: largest / smallest = {max(peaks) / min(peaks):.3f} (target ≤ 1.10); "
          f"max {max(peaks) / 1024:.2f} GiB (target ≤ 1.5 GiB)")
    n0 = args.rows[0]
    folder = root / f"rows-{n0}"
    mem = run_child(folder, "memory")
    _read_all(folder)                                  # the file in the page cache, then stream it
    st = run_child(folder, "stream")
    print(table([("in memory", f"{mem['samples_per_s']:,.0f}", f"{mem['epoch_s']:.2f}", f"{mem['peak_rss_mib']:.0f}"),
                 ("streamed (page cache)", f"{st['samples_per_s']:,.0f}", f"{st['epoch_s']:.2f}",
                  f"{st['peak_rss_mib']:.0f}")],
                ("same data, one epoch", "samples/s", "epoch s", "peak RSS MiB")))
    print(f"streamed / in-memory samples/s = {st['samples_per_s'] / mem['samples_per_s']:.2f} (target ≥ 0.70)")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
