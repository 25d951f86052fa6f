"""lr="auto" against the best constant learning rate of a 12-point log grid, after 10 epochs.

For each dataset and batch size: the training objective F after 10 epochs of SGD from zero with
lr="auto", and with each lr of a log grid (10⁻⁴ … 10², 12 points; a diverged run counts as ∞);
prints the ratio F_auto / F_best (the target: never diverged, ratio ≤ 1.5).

    python benchmarks/autolr_table.py [--quick]
"""

from __future__ import annotations

import argparse
import math
import warnings

import numpy as np
from sklearn.datasets import load_wine

import linearnets as ln

GRID = np.logspace(-4, 2, 12)


def datasets(quick: bool):
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
    model = cls(solver="sgd", lr=lr, batch_size=batch, epochs=10, standardize=standardize, dtype="float64")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X, y)
    except ln.DivergenceError:
        return math.inf, None
    return model.evaluate(X, y)["loss"], getattr(model, "lr_", lr)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    print("| data | batch | lr auto | F(auto) | best grid lr | F(best) | ratio |")
    print("|---|---|---|---|---|---|---|")
    worst = 0.0
    for name, cls, X, y, standardize in datasets(args.quick):
        for batch in (1, 32, 256, len(y)):
            auto, lr = final_loss(cls, X, y, standardize, "auto", batch)
            grid = [final_loss(cls, X, y, standardize, float(g), batch)[0] for g in GRID]
            best = int(np.argmin(grid))
            ratio = auto / grid[best] if grid[best] > 0 else math.inf   # separable data: CE underflows to 0
            worst = max(worst, ratio)
            label = "full" if batch == len(y) else str(batch)
            print(f"| {name} | {label} | {lr:.3g} | {auto:.4g} | {GRID[best]:.3g} | {grid[best]:.4g} | {ratio:.2f} |",
                  flush=True)
    print(f"worst ratio {worst:.2f}")


if __name__ == "__main__":
    main()
