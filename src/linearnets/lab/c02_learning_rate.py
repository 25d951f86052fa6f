"""C2 — learning rate too small → slow; too large → overshoots or diverges."""

from __future__ import annotations

import math

import numpy as np
import torch

from .. import data
from ..params import Params
from ..plots import plt
from .base import Result, describe, verdict_from
from .tracking import Track, problem_from, run_solver

ID = "C2"
TITLE = "Learning rate: slow, fast, divergent — and the 2/λ_max threshold"
CLAIM_ZH = ("学习率不能太大也不能太小，学习率太小会导致收敛很慢，消耗计算资源；"
            "学习率太大可能会导致跳过收敛点，也不合适。")
CLAIM_EN = ("The learning rate must be neither too large nor too small: too small converges slowly and "
            "wastes compute; too large may jump over the minimum.")
RUN = ("Full-batch gradient descent for linear regression on scikit-learn's diabetes data (442 × 10, "
       "with intercept). A log-spaced sweep of learning rates records the loss after a fixed budget of "
       "steps; the largest stable rate is then found by bisection between the last stable and first "
       "unstable rate of the sweep (stable = finite and below the starting loss after T steps) and "
       "compared with the theory for a quadratic: GD is stable iff lr < 2/λ_max of the Hessian "
       "[X, 1]ᵀ[X, 1]/n.")
CRITERION = ("supported when the measured threshold is within [0.9, 1.1] × 2/λ_max, the smallest rate "
             "of the sweep ends ≥ 10× further from the optimum (F − F*) than the best rate after the "
             "same budget (slow), and 1.1 × the measured threshold diverges")


def _stable(problem, lr, steps) -> bool:
    F0 = float(problem.value(Params.zeros(problem.d, problem.k, dtype=problem.dtype)))
    params, history, diverged = run_solver(problem, "gd", epochs=steps, lr=lr, tol=0.0)
    return not diverged and math.isfinite(history.last["loss"]) and history.last["loss"] < F0


def run(config, deps=None) -> Result:
    X, y = data.load_diabetes()
    problem = problem_from(X, y, loss="squared")
    zero = Params.zeros(problem.d, 1, dtype=torch.float64)
    lam = torch.linalg.eigvalsh(problem.hessian(zero))
    lam_max, lam_min = float(lam.max()), float(lam.min())
    predicted = 2.0 / lam_max
    T = config.size(300, 2000)            # steps for the stability test
    budget = config.size(100, 500)        # steps for the sweep

    grid = np.logspace(-3, 2, config.size(16, 31))
    exact, _, _ = run_solver(problem, "exact", epochs=1)
    F_star = float(problem.value(exact))
    final = []                            # suboptimality F - F* after the budget
    for lr in grid:
        _, history, diverged = run_solver(problem, "gd", epochs=budget, lr=float(lr), tol=0.0)
        final.append(math.inf if diverged else history.last["loss"] - F_star)
    first_unstable = next((j for j, lr in enumerate(grid) if not _stable(problem, float(lr), T)), None)
    if first_unstable in (None, 0):
        raise RuntimeError("the learning-rate grid did not bracket the stability threshold")
    lo, hi = float(grid[first_unstable - 1]), float(grid[first_unstable])
    for _ in range(config.size(12, 20)):                  # geometric bisection
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if _stable(problem, mid, T) else (lo, mid)
    measured = lo
    ratio = measured / predicted

    curves = {}
    for name, factor in (("0.01×", 0.01), ("0.5×", 0.5), ("0.95×", 0.95), ("1.1×", 1.1)):
        track = Track(problem)
        run_solver(problem, "gd", epochs=budget, lr=factor * measured, tol=0.0, callbacks=[track])
        curves[name] = [v - F_star for v in track.values]
    above_diverges = not _stable(problem, 1.1 * measured, T)
    finite = [f for f in final if math.isfinite(f)]
    best = min(finite)
    slow_factor = final[0] / best
    checks = {f"measured / predicted = {ratio:.3f} ∈ [0.9, 1.1]": 0.9 <= ratio <= 1.1,
              f"smallest lr ends {slow_factor:.3g}× further from the optimum than the best lr (≥ 10)":
                  slow_factor >= 10,
              "1.1 × threshold diverges": above_diverges}
    numbers = {"lambda_max": lam_max, "lambda_min": lam_min, "condition_number": lam_max / lam_min,
               "predicted_threshold": predicted, "measured_threshold": measured, "ratio": ratio,
               "optimal_loss": F_star, "lr_grid": grid, "suboptimality_after_budget": [f if math.isfinite(f) else None for f in final],
               "best_lr": float(grid[int(np.argmin(final))]),
               "slow_factor": slow_factor, "above_threshold_diverges": above_diverges}
    return Result(ID, TITLE, CLAIM_ZH, CLAIM_EN, RUN,
                  settings={"data": "diabetes", "solver": "gd", "stability_steps": T, "budget_steps": budget,
                            "bisection_steps": config.size(12, 20)},
                  seed=config.seed, numbers=numbers, verdict=verdict_from(checks), criterion=CRITERION,
                  reason=describe(checks), series={"curves": curves, "measured": measured},
                  nulls={"suboptimality_after_budget": "None where that learning rate diverged within the budget"})


def plot(result, folder) -> list[str]:
    n = result.numbers
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    grid = np.asarray(n["lr_grid"])
    final = np.asarray(n["suboptimality_after_budget"], dtype=float)
    ok = np.isfinite(final)
    a.loglog(grid[ok], final[ok], "o-", label=f"F − F* after {result.settings['budget_steps']} GD steps")
    if (~ok).any():
        top = final[ok].max()
        a.loglog(grid[~ok], np.full((~ok).sum(), top), "x", color="red", ms=9, label="diverged")
    a.axvline(n["predicted_threshold"], color="k", ls="--", label=f"2/λ_max = {n['predicted_threshold']:.3g}")
    a.axvline(n["measured_threshold"], color="C3", ls=":", lw=2, label=f"measured = {n['measured_threshold']:.3g}")
    a.set(xlabel="learning rate", ylabel="suboptimality F − F*", title="Learning-rate sweep (diabetes, full-batch GD)")
    a.legend(fontsize=8)
    for name, values in result.series["curves"].items():
        v = np.asarray(values, dtype=float)
        steps = np.arange(1, len(v) + 1)
        ok = np.isfinite(v) & (v > 0)                 # a diverging run stops at its last finite loss
        b.semilogy(steps[ok], v[ok], label=f"lr = {name} threshold")
    b.set(xlabel="step", ylabel="F − F*", title="Loss curves around the threshold")
    b.legend(fontsize=8)
    for ax in (a, b):
        ax.grid(alpha=0.3)
    name = "C2_learning_rate.png"
    return [result.save_figure(fig, folder, name)]
