"""lr="auto" against the best constant learning rate of a 12-point log grid, after 10 epochs.

For each dataset and batch size: the training objective F after 10 epochs of SGD from zero with
lr="auto" (the race of rates, annealed — its default schedule), with lr="curvature" (the rule alone,
constant) and with each lr of a log grid (10⁻⁴ … 10², 12 points, constant; a diverged run counts as
∞); prints the ratio F_auto / F_best (the target: never diverged, ratio ≤ 1.5), the rates the race
tried, and what auto cost: its fit's seconds over one constant-rate fit's.

    python benchmarks/autolr_table.py [--quick]
    python benchmarks/autolr_table.py --large      # past RACE_ROWS: 60 000 rows, scored on held-out rows
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import numpy as np
from sklearn.datasets import load_wine

import linearnets as ln

GRID = np.logspace(-4, 2, 12)


def datasets(quick: bool, large: bool = False):
    if large:
        f = ln.data.fashion_mnist_like(n=60000, seed=0)
        yield f"Fashion-MNIST-shaped ({f.n} rows)", ln.SoftmaxRegression, f.X, f.y, False
        return
    X, y = ln.data.load_digits()
    yield "digits (pixels /16)", ln.SoftmaxRegression, X, y, False
    yield "digits (raw 0–16)", ln.SoftmaxRegression, X * 16, y, False
    yield "digits (standardised)", ln.SoftmaxRegression, X, y, True
    w = load_wine()
    yield "wine (standardised)", ln.SoftmaxRegression, w.data, w.target, True
    X, y = ln.data.load_diabetes()
    yield "diabetes", ln.LinearRegression, X, y, False
    X, y = ln.data.synthetic_regression(n=1000, seed=0)
    yield "book's synthetic", ln.LinearRegression, X, y, False
    f = ln.data.fashion_mnist_like(n=2000 if quick else 10000, seed=0)
    yield f"Fashion-MNIST-shaped ({f.n} rows)", ln.SoftmaxRegression, f.X, f.y, False


def final_loss(cls, X, y, standardize, lr, batch):
    """(F after 10 epochs, the model or None when it diverged, seconds of the fit)."""
    model = cls(solver="sgd", lr=lr, batch_size=batch, epochs=10, standardize=standardize, dtype="float64")
    t = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X, y)
    except ln.DivergenceError:
        return math.inf, None, time.perf_counter() - t
    return model.evaluate(X, y)["loss"], model, time.perf_counter() - t


def ratio(F, best):
    return F / best if best > 0 else (1.0 if F == 0 else math.inf)   # separable data: CE underflows to 0


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--large", action="store_true", help="60 000 Fashion-MNIST-shaped rows, batch 32 and 256")
    args = ap.parse_args(argv)
    print("| data | batch | rule η₀ | F(rule) | lr auto (× η₀) | runs × rows | F(auto) | best grid lr | F(best) | "
          "auto / best | rule / best | auto s / one fit s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    worst, diverged = 0.0, 0
    for name, cls, X, y, standardize in datasets(args.quick, args.large):
        for batch in (32, 256) if args.large else (1, 32, 256, len(y)):
            auto, model, auto_s = final_loss(cls, X, y, standardize, "auto", batch)
            rule, _, _ = final_loss(cls, X, y, standardize, "curvature", batch)
            runs = [final_loss(cls, X, y, standardize, float(g), batch) for g in GRID]
            grid = [F for F, _, _ in runs]
            best = int(np.argmin(grid))
            one_s = float(np.median([s for _, m, s in runs if m is not None]))
            label = "full" if batch == len(y) else str(batch)
            if model is None:
                diverged += 1
                print(f"| {name} | {label} | | | diverged | | ∞ | {GRID[best]:.3g} | {grid[best]:.4g} | ∞ | | |")
                continue
            race = model.lr_race_
            worst = max(worst, ratio(auto, grid[best]))
            rows = f"{race.rows}" + (" (held-out score)" if race.held_out else "")
            print(f"| {name} | {label} | {race.start:.3g} | {rule:.4g} | {model.lr_:.3g} ({model.lr_ / race.start:.3g}×) "
                  f"| {len(race.tried)} × {rows} | {auto:.4g} | {GRID[best]:.3g} | {grid[best]:.4g} "
                  f"| {ratio(auto, grid[best]):.2f} | {ratio(rule, grid[best]):.2f} | {auto_s / one_s:.1f} |", flush=True)
    print(f"worst ratio {worst:.2f}; diverged {diverged}")


if __name__ == "__main__":
    main()
