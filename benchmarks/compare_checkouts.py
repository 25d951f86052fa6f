"""Two checkouts of linearnets side by side: the SGD epoch and the closed form, interleaved.

    git worktree add /tmp/base <commit>
    python benchmarks/compare_checkouts.py --base /tmp/base/src --new src [--rounds 5]

Each round runs one child process per checkout (base, new, then new, base on the next round, so
neither always goes first), timing through the public estimators exactly as `linearnets bench sgd`
and `bench exact` do:

  sgd    SoftmaxRegression(solver="sgd", lr=0.1, batch_size=256) on 60 000 × 784 → 10 float32,
         the fastest of 10 epochs (the first, warm-up, left out)
  exact  LinearRegression(solver="exact").fit on n = 1 000 000, d = 100 float64, the fastest of 4

and prints, per workload, the minimum and the median over rounds of each checkout and their ratios
new / base. The minimum is the figure to trust on a shared machine: other work only ever adds time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time, statistics
import numpy as np
import linearnets as ln
which = sys.argv[1]
out = {}
if which == "sgd":
    data = ln.data.fashion_mnist_like(n=60000, seed=0)
    m = ln.SoftmaxRegression(solver="sgd", lr=0.1, batch_size=256, epochs=11, seed=0).fit(data.X, data.y)
    out["seconds"] = min(r["seconds"] for r in m.history_[1:])
else:
    rng = np.random.default_rng(0)
    n, d = 1_000_000, 100
    X = rng.standard_normal((n, d)) * rng.uniform(0.5, 2.0, d) + rng.uniform(-3, 3, d)
    y = X @ rng.standard_normal(d) + 1.5 + 0.1 * rng.standard_normal(n)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        ln.LinearRegression(solver="exact").fit(X, y)
        times.append(time.perf_counter() - t0)
    out["seconds"] = min(times[1:])
print(json.dumps(out))
"""


def child(src: str, which: str) -> float:
    env = {**os.environ, "PYTHONPATH": os.path.abspath(src)}
    p = subprocess.run([sys.executable, "-c", CHILD, which], capture_output=True, text=True, env=env, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])["seconds"]


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True, help="src folder of the reference checkout")
    ap.add_argument("--new", default="src", help="src folder of this checkout")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--which", nargs="*", default=["sgd", "exact"])
    args = ap.parse_args(argv)
    for which in args.which:
        times = {"base": [], "new": []}
        for r in range(args.rounds):
            order = ("base", "new") if r % 2 == 0 else ("new", "base")
            for name in order:
                times[name].append(child(getattr(args, name), which))
        b, n = min(times["base"]), min(times["new"])
        bm, nm = statistics.median(times["base"]), statistics.median(times["new"])
        print(f"{which}: fastest base {b * 1e3:.1f} ms, new {n * 1e3:.1f} ms, new/base {n / b:.3f}; "
              f"median base {bm * 1e3:.1f} ms, new {nm * 1e3:.1f} ms, new/base {nm / bm:.3f} "
              f"(rounds: base {[round(t * 1e3, 1) for t in times['base']]}, "
              f"new {[round(t * 1e3, 1) for t in times['new']]})", flush=True)


if __name__ == "__main__":
    main()
