"""C5 — Newton's method jumps to the minimum of the quadratic model; in theory faster than SGD."""

from __future__ import annotations

import numpy as np
import torch

from .. import data
from ..params import Params
from ..plots import plt
from .base import Result, describe, verdict_from
from .tracking import Track, problem_from, run_solver

ID = "C5"
TITLE = "Newton vs gradient descent vs SGD: per iteration and per second"
CLAIM_ZH = ("牛顿法利用到损失函数的二阶导数(Hessian矩阵)信息，直接跳到二次近似最小值。"
            "而随机梯度下降法沿着一阶导数下降最快的方向以合适的学习率不断迭代寻找使得损失函数最小的参数最优解。"
            "因此从理论上牛顿法要快于随机梯度下降")
CLAIM_EN = ("Newton's method uses the second derivative (the Hessian) and jumps straight to the minimum "
            "of the quadratic approximation, whereas SGD iterates along the steepest first-order "
            "direction with a suitable learning rate; so in theory Newton is faster than SGD.")
RUN = ("Two convex problems: linear regression on diabetes (the exact optimum from the closed form) "
       "and softmax regression with weight decay λ = 1e-3 on the standardised training split "
       "(optimum from Newton run to max|∇F| ≤ 1e-12). Newton (explicit Hessian, line search), "
       "full-batch GD (lr = 1/λ_max of the Hessian at the start) and minibatch SGD (batch 32) from "
       "zero; the suboptimality F − F* is recorded after every iteration (epoch for SGD) with the "
       "recording time excluded from the clock.")
CRITERION = ("supported when Newton solves linear regression in 1 iteration (F − F* ≤ 1e-10), reaches "
             "F − F* ≤ 1e-8 on softmax regression in ≤ 20 iterations, and reaches it sooner in wall time "
             "than GD and SGD (which may not reach it at all within their budgets)")


def _pool(X: np.ndarray, side: int) -> np.ndarray:
    """2×2 average pooling of square images (keeps Newton's Hessian small on 28×28 data)."""
    imgs = X.reshape(-1, side, side)
    return imgs.reshape(-1, side // 2, 2, side // 2, 2).mean(axis=(2, 4)).reshape(X.shape[0], -1)


def softmax_problem(config, weight_decay=1e-3):
    Xtr, ytr, *_ , ds = config.classification
    pooled = False
    if Xtr.shape[1] > 256 and ds.image_shape:
        Xtr, pooled = _pool(Xtr, ds.image_shape[0]), True
    mu, sd = Xtr.mean(0), Xtr.std(0)
    Xs = (Xtr - mu) / np.where(sd > 0, sd, 1.0)
    return problem_from(Xs, ytr, weight_decay=weight_decay, k=10), pooled


def _curves(problem, F_star, solver, epochs, **settings):
    track = Track(problem)
    params, history, diverged = run_solver(problem, solver, epochs=epochs, callbacks=[track], **settings)
    F0 = float(problem.value(Params.zeros(problem.d, problem.k, dtype=problem.dtype)))
    sub = [F0 - F_star] + [max(v - F_star, 0.0) for v in track.values]
    return {"iterations": list(range(len(sub))), "seconds": [0.0] + track.seconds, "suboptimality": sub}


def _first_below(curve, level):
    for it, s, v in zip(curve["iterations"], curve["seconds"], curve["suboptimality"]):
        if v <= level:
            return it, s
    return None, None


def run(config, deps=None) -> Result:
    X, y = data.load_diabetes()
    lin = problem_from(X, y, loss="squared")
    exact, _, _ = run_solver(lin, "exact", epochs=1)
    F_lin = float(lin.value(exact))
    zero = Params.zeros(lin.d, 1, dtype=torch.float64)
    L_lin = float(torch.linalg.eigvalsh(lin.hessian(zero)).max())
    budget = config.size(200, 2000)
    curves = {"linear": {
        "newton": _curves(lin, F_lin, "newton", 5, tol=1e-12),
        "gd": _curves(lin, F_lin, "gd", budget, lr=1.0 / L_lin, tol=0.0),
        "sgd": _curves(lin, F_lin, "sgd", config.size(30, 200), lr=0.5 / L_lin, batch_size=32, seed=config.seed),
    }}
    sm, pooled = softmax_problem(config)
    star = Params.zeros(sm.d, sm.k, dtype=torch.float64)
    run_solver(sm, "newton", epochs=100, params=star, tol=1e-12)
    F_sm = float(sm.value(star))
    L_sm = float(torch.linalg.eigvalsh(sm.hessian(Params.zeros(sm.d, sm.k, dtype=torch.float64))).max())
    curves["softmax"] = {
        "newton": _curves(sm, F_sm, "newton", 30, tol=1e-12),
        "gd": _curves(sm, F_sm, "gd", budget, lr=1.0 / L_sm, tol=0.0),
        "sgd": _curves(sm, F_sm, "sgd", config.size(30, 100), lr=0.5 / L_sm, batch_size=32, seed=config.seed),
    }
    lin_newton_1 = curves["linear"]["newton"]["suboptimality"][1]
    reach = {f"{p}/{s}": _first_below(curves[p][s], 1e-8) for p in curves for s in curves[p]}
    it_sm, t_sm = reach["softmax/newton"]

    def sooner(other):
        t = reach[other][1]
        return t_sm is not None and (t is None or t_sm < t)
    checks = {f"Newton, linear: F − F* after 1 iteration = {lin_newton_1:.1e} ≤ 1e-10": lin_newton_1 <= 1e-10,
              f"Newton, softmax: F − F* ≤ 1e-8 after {it_sm} iterations (≤ 20)": it_sm is not None and it_sm <= 20,
              "Newton reaches 1e-8 sooner than GD and SGD on both problems":
                  sooner("softmax/gd") and sooner("softmax/sgd")
                  and reach["linear/newton"][1] is not None
                  and all(reach[f"linear/{s}"][1] is None or reach["linear/newton"][1] < reach[f"linear/{s}"][1]
                          for s in ("gd", "sgd"))}
    numbers = {"linear_newton_suboptimality_after_1": lin_newton_1,
               "softmax_newton_iterations_to_1e-8": it_sm, "softmax_newton_seconds_to_1e-8": t_sm,
               "reach_1e-8": {k: {"iteration": v[0], "seconds": v[1]} for k, v in reach.items()},
               "final_suboptimality": {f"{p}/{s}": curves[p][s]["suboptimality"][-1] for p in curves for s in curves[p]},
               "optimal_loss": {"linear": F_lin, "softmax": F_sm},
               "hessian_lambda_max": {"linear": L_lin, "softmax_at_zero": L_sm},
               "softmax_parameters": (sm.d + 1) * sm.k}
    return Result(ID, TITLE, CLAIM_ZH, CLAIM_EN, RUN,
                  settings={"dataset": config.dataset, "weight_decay": 1e-3, "gd_iterations": budget,
                            "sgd_batch_size": 32, "pooled_2x2": pooled},
                  seed=config.seed, numbers=numbers, verdict=verdict_from(checks), criterion=CRITERION,
                  reason=describe(checks), series=curves,
                  nulls={k: "None where the solver did not reach F − F* ≤ 1e-8 within its budget"
                         for k in ("reach_1e-8", "softmax_newton_iterations_to_1e-8", "softmax_newton_seconds_to_1e-8")})


def plot(result, folder) -> list[str]:
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), layout="constrained")
    labels = {"newton": "Newton", "gd": "gradient descent", "sgd": "SGD (batch 32), per epoch"}
    for r, problem in enumerate(("linear", "softmax")):
        for c, xkey in enumerate(("iterations", "seconds")):
            ax = axes[r, c]
            for solver, curve in result.series[problem].items():
                sub = np.maximum(np.asarray(curve["suboptimality"], float), 1e-16)
                x = np.asarray(curve[xkey], float)
                if xkey == "seconds":                      # log time axis: from the first iteration on
                    x, sub = x[1:], sub[1:]
                ax.plot(x, sub, marker="o" if solver == "newton" else None, ms=4, label=labels[solver])
            ax.set_yscale("log")
            ax.axhline(1e-8, color="grey", ls=":", lw=1)
            if xkey == "seconds":
                ax.set_xscale("log")
            ax.set(xlabel="iteration (epoch for SGD)" if xkey == "iterations" else "seconds",
                   ylabel="F − F*", title=f"{problem} regression — vs {xkey}")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    name = "C5_newton_vs_gd_sgd.png"
    return [result.save_figure(fig, folder, name)]
