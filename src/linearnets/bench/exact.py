"""The closed form at scale, side by side (issue: speed).

n = 1 000 000, d = 100, float64 (features with non-zero means). Timed in one process:

  linearnets       LinearRegression(solver="exact").fit — the estimator (validation included)
  linearnets API   the training API: an InMemory source + the exact solver (no input validation)
  bare             torch X.T @ X, X.T @ y, Cholesky solve — the floor of the method
  scikit-learn     LinearRegression().fit (centres X, then an SVD-based least squares)
  numpy lstsq      the accuracy reference

and the same with an ill-conditioned X (one column a near copy of another), which takes the
QR fallback. Peak extra memory is the resident-set growth during each call.

    linearnets bench exact  (or: python benchmarks/bench_exact.py) [--n 1000000] [--d 100]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from sklearn.linear_model import LinearRegression as SK

import linearnets as ln
from linearnets.data import InMemory, Targets
from linearnets.losses import get_loss
from linearnets.objective import Objective
from linearnets.solvers import SolverConfig, get_solver
from linearnets.train import TrainState, train

from .common import PeakRSS, machine, median_time, table


def api_fit(X, y):
    source = InMemory.from_arrays(X, y, Targets("regression", 1), dtype=torch.float64)
    state = TrainState.fresh(X.shape[1], 1, dtype=torch.float64)
    train(source, Objective(get_loss("squared")), get_solver("exact")(SolverConfig()), state, epochs=1)
    return state.params


def bare(Xt, yt):
    G = Xt.T @ Xt
    c = Xt.T @ yt
    return torch.cholesky_solve(c[:, None], torch.linalg.cholesky(G))


def timed(fn, repeats):
    with PeakRSS() as mem:
        t = median_time(fn, repeats=repeats, warmup=0)
    return t, mem.mib


def main(argv=None):
    ap = argparse.ArgumentParser(prog=f"linearnets bench {__name__.rsplit('.', 1)[-1]}")
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    n, d, R = args.n, args.d, args.repeats
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d)) * rng.uniform(0.5, 2.0, d) + rng.uniform(-3, 3, d)
    w = rng.standard_normal(d)
    y = X @ w + 1.5 + 0.1 * rng.standard_normal(n)
    print(f"workload: n={n}, d={d}, float64 ({X.nbytes / 2**20:.0f} MiB); {machine()}")

    t0 = time.perf_counter()
    ref = np.linalg.lstsq(np.hstack([X, np.ones((n, 1))]), y, rcond=None)[0]
    t_lstsq = time.perf_counter() - t0
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    t_ours, m_ours = timed(lambda: ln.LinearRegression(solver="exact").fit(X, y), R)
    model = ln.LinearRegression(solver="exact").fit(X, y)
    t_api, m_api = timed(lambda: api_fit(X, y), R)
    t_bare, m_bare = timed(lambda: bare(Xt, yt), R)
    t_sk, m_sk = timed(lambda: SK().fit(X, y), 1)
    err = float(np.linalg.norm(model.coef_ - ref[:-1]) / np.linalg.norm(ref[:-1]))
    rows = [("bare X.T@X + Cholesky", f"{t_bare:.3f}", "1.00", f"{m_bare:.0f}", "—"),
            ("linearnets estimator", f"{t_ours:.3f}", f"{t_ours / t_bare:.2f}", f"{m_ours:.0f}", f"{err:.1e}"),
            ("linearnets training API", f"{t_api:.3f}", f"{t_api / t_bare:.2f}", f"{m_api:.0f}", "—"),
            ("scikit-learn LinearRegression", f"{t_sk:.3f}", f"{t_sk / t_bare:.2f}", f"{m_sk:.0f}", "—"),
            ("numpy lstsq (reference)", f"{t_lstsq:.3f}", f"{t_lstsq / t_bare:.2f}", "—", "0")]
    print(table(rows, ("method", "seconds", "× bare", "peak extra MiB", "rel. error of coef")))
    print(f"linearnets is {t_sk / t_ours:.1f}× faster than scikit-learn (estimator; "
          f"{t_sk / t_api:.1f}× through the training API)")

    # ill-conditioned: column d-1 is column 0 plus 1e-7 noise
    Xi = X.copy()
    Xi[:, -1] = Xi[:, 0] + 1e-7 * rng.standard_normal(n)
    yi = Xi @ w + 1.5 + 0.1 * rng.standard_normal(n)
    ref_i = np.linalg.lstsq(np.hstack([Xi - Xi.mean(0), np.ones((n, 1))]), yi - yi.mean(), rcond=None)[0][:-1]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t_ill, m_ill = timed(lambda: ln.LinearRegression(solver="exact").fit(Xi, yi), 1)
        mi = ln.LinearRegression(solver="exact").fit(Xi, yi)
    fell_back = any(issubclass(c.category, ln.IllConditionedWarning) for c in caught)
    err_i = float(np.linalg.norm(mi.coef_ - ref_i) / np.linalg.norm(ref_i))
    t_sk_i = median_time(lambda: SK().fit(Xi, yi), repeats=1, warmup=0)
    print(table([("linearnets (QR fallback)" if fell_back else "linearnets", f"{t_ill:.3f}",
                  f"{t_ill / t_bare:.2f}", f"{m_ill:.0f}", f"{err_i:.1e}"),
                 ("scikit-learn LinearRegression", f"{t_sk_i:.3f}", f"{t_sk_i / t_bare:.2f}", "—", "—")],
                ("ill-conditioned X (cond ≈ 1e8)", "seconds", "× bare", "peak extra MiB", "rel. error vs lstsq")))


if __name__ == "__main__":
    main()
