"""C1 — a linear model is a one-layer network; squared loss is convex with a closed form."""

from __future__ import annotations

import numpy as np
import torch

from .. import data
from ..params import Params
from ..plots import plt
from ..train import Callback
from .base import Result, describe, verdict_from
from .tracking import problem_from, run_solver

ID = "C1"
TITLE = "Closed form vs minibatch SGD on the book's data"
CLAIM_ZH = ("线性模型可以看作一层的神经网络；线性回归是对n维输入的加权，外加偏差；"
            "线性回归使用平方损失来衡量预测值和真实值的差异，损失函数是凸函数，有显式解(精确解)")
CLAIM_EN = ("A linear model is a one-layer neural network; linear regression is a weighted sum of the "
            "n inputs plus a bias; it uses the squared loss, which is convex and has an explicit "
            "(exact) solution.")
RUN = ("The book's synthetic data (w = [2, −3.4], b = 4.2, σ = 0.01, n = 1000). The closed form "
       "(normal equations, Cholesky, float64) and minibatch SGD (lr 0.03, batch 10, 3 epochs — the "
       "book's recipe) from zero; the full-data loss is recorded after every SGD step. Convexity: the "
       "smallest eigenvalue of the Hessian [X, 1]ᵀ[X, 1]/n.")
CRITERION = ("supported when the Hessian's smallest eigenvalue is > 0 (strictly convex), the closed "
             "form's parameters are within 5e-3 of the true ones, and SGD ends within 5e-3 of "
             "the closed-form parameters with a loss at most 1e-4 above the closed-form loss. Judged on work (steps, values): exactly reproducible for a seed")


def run(config, deps=None) -> Result:
    seed = config.seed
    w_true, b_true = np.array([2.0, -3.4]), 4.2
    X, y = data.synthetic_regression(n=1000, seed=seed, dtype=np.float64)
    problem = problem_from(X, y, loss="squared")
    exact, _, _ = run_solver(problem, "exact", epochs=1)
    F_exact = float(problem.value(exact))
    H = problem.hessian(exact)
    lam_min = float(torch.linalg.eigvalsh(H).min())

    # SGD, recording the full loss and the parameter error after every step (the public step event)
    steps_F, steps_err = [], []
    theta_exact = exact.flat()

    class Recorder(Callback):
        def on_step(self, state, step):
            steps_F.append(float(problem.value(step.params)))
            steps_err.append(float((step.params.flat() - theta_exact).abs().max()))

    params, _, _ = run_solver(problem, "sgd", epochs=3, params=Params.zeros(2, 1, dtype=torch.float64),
                              callbacks=[Recorder()], lr=0.03, batch_size=10, seed=seed)
    F_sgd = float(problem.value(params))
    w_sgd, b_sgd = params.W[:, 0].numpy(), float(params.b[0])
    w_ex, b_ex = exact.W[:, 0].numpy(), float(exact.b[0])
    err_exact = float(max(np.abs(w_ex - w_true).max(), abs(b_ex - b_true)))
    err_sgd = float(max(np.abs(w_sgd - w_true).max(), abs(b_sgd - b_true)))
    gap = float(max(np.abs(w_sgd - w_ex).max(), abs(b_sgd - b_ex)))
    checks = {f"Hessian λ_min = {lam_min:.3g} > 0": lam_min > 0,
              f"closed-form error {err_exact:.2e} ≤ 5e-3": err_exact <= 5e-3,
              f"SGD − closed form = {gap:.2e} ≤ 5e-3": gap <= 5e-3,
              f"SGD loss − closed-form loss = {F_sgd - F_exact:.2e} ≤ 1e-4": F_sgd - F_exact <= 1e-4}
    numbers = {"w_true": w_true, "b_true": b_true, "w_exact": w_ex, "b_exact": b_ex, "w_sgd": w_sgd,
               "b_sgd": b_sgd, "param_error_exact": err_exact, "param_error_sgd": err_sgd,
               "sgd_minus_exact_params": gap, "loss_exact": F_exact, "loss_sgd": F_sgd,
               "loss_gap": F_sgd - F_exact, "hessian_min_eigenvalue": lam_min, "sgd_steps": len(steps_F)}
    return Result(ID, TITLE, CLAIM_ZH, CLAIM_EN, RUN,
                  settings={"n": 1000, "noise": 0.01, "lr": 0.03, "batch_size": 10, "epochs": 3},
                  seed=seed, numbers=numbers, verdict=verdict_from(checks), criterion=CRITERION,
                  reason=describe(checks), series={"F": steps_F, "err": steps_err, "F_exact": F_exact})


def plot(result, folder) -> list[str]:
    s = result.series
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    steps = np.arange(1, len(s["F"]) + 1)
    a.semilogy(steps, s["F"], label="SGD: full-data loss after each step")
    a.axhline(s["F_exact"], color="k", ls="--", label=f"closed form: {s['F_exact']:.2e}")
    a.set(xlabel="SGD step (batch 10)", ylabel="loss ½·mean(ŷ−y)²", title="Loss")
    b.semilogy(steps, s["err"], color="C1")
    b.set(xlabel="SGD step", ylabel="max |θ_SGD − θ_closed form|", title="Distance to the closed form")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        for e in (100, 200):
            ax.axvline(e, color="grey", lw=0.5)
    a.legend()
    name = "C1_closed_form_vs_sgd.png"
    return [result.save_figure(fig, folder, name)]
