"""Time to the optimum of L2-regularised softmax regression, side by side (issue: speed).

weight_decay λ = 1e-4; scikit-learn's LogisticRegression(solver="lbfgs", C = 1/(n·λ)) runs with its
defaults and its final objective F_sk is the target. Each linearnets solver (newton, newton-cg,
lbfgs; float64) runs until its objective is within 1e-6 (relative) of F_sk, or below it; the time
to get there is compared with scikit-learn's total time. Workloads: the reference (synthetic
60 000 × 784 → 10) and digits (1797 × 64, standardised).

    linearnets bench optimum  (or: python benchmarks/bench_optimum.py) [--n 60000] [--newton-on-large]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

import linearnets as ln
from linearnets.lab.tracking import problem_from
from linearnets.params import Params
from linearnets.solvers import SolverConfig, get_solver
from linearnets.train import Callback, TrainState, train

from .common import machine, table


class StopAt(Callback):
    def __init__(self, target):
        self.target, self.t0, self.reached = target, time.perf_counter(), None

    def on_epoch(self, state, record):
        if record["loss"] <= self.target:
            self.reached = time.perf_counter() - self.t0
            return True
        return False


def run(name, X, y, lam, solvers):
    n = X.shape[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        sk = LogisticRegression(solver="lbfgs", C=1.0 / (n * lam)).fit(X, y)
        t_sk = time.perf_counter() - t0
    problem = problem_from(X, y, weight_decay=lam, k=10)
    F_sk = float(problem.value(Params(torch.from_numpy(sk.coef_.T.copy()), torch.from_numpy(sk.intercept_.copy()))))
    target = F_sk * (1 + 1e-6)
    rows = [("scikit-learn lbfgs", f"{t_sk:.3f}", "1.00", f"{F_sk:.10f}", int(np.max(sk.n_iter_)))]
    best = None
    for solver in solvers:
        state = TrainState.fresh(problem.d, 10, dtype=torch.float64)
        stop = StopAt(target)
        hist = train(problem.source, problem.objective, get_solver(solver)(SolverConfig(tol=0.0, epochs=2000)),
                     state, epochs=2000, callbacks=[stop])
        t = stop.reached
        rows.append((f"linearnets {solver}", f"{t:.3f}" if t else "not reached",
                     f"{t / t_sk:.2f}" if t else "—", f"{hist[-1]['loss']:.10f}", len(hist)))
        if t is not None and (best is None or t < best[1]):
            best = (solver, t)
    print(f"\n{name}: n={n}, d={X.shape[1]}, λ={lam}; target F ≤ F_sk·(1 + 1e-6)")
    print(table(rows, ("method", "seconds to target", "× scikit-learn", "final objective", "iterations")))
    if best:
        print(f"best: {best[0]} at {best[1] / t_sk:.2f}× scikit-learn's time")


def main(argv=None):
    ap = argparse.ArgumentParser(prog=f"linearnets bench {__name__.rsplit('.', 1)[-1]}")
    ap.add_argument("--n", type=int, default=60000)
    ap.add_argument("--newton-on-large", action="store_true",
                    help="also run the explicit-Hessian Newton on the reference workload (p = 7850: slow)")
    args = ap.parse_args(argv)
    print(machine())
    lam = 1e-4
    Xd, yd = ln.data.load_digits()
    run("digits (standardised)", StandardScaler().fit_transform(Xd), yd, lam, ["newton", "newton-cg", "lbfgs"])
    ds = ln.data.fashion_mnist_like(n=args.n, seed=0)
    X = ds.X.astype(np.float64)
    run("reference workload", X, ds.y, lam, ["newton", "newton-cg", "lbfgs"] if args.newton_on_large else
        ["newton-cg", "lbfgs"])


if __name__ == "__main__":
    main()
