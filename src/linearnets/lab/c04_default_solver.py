"""C4 — minibatch SGD is the default solver; lr and batch size are its two key hyperparameters."""

from __future__ import annotations

import time

import numpy as np
import torch

from ..plots import plt
from ..train import Callback
from .base import INCONCLUSIVE, Result, describe, verdict_from
from .tracking import problem_from, run_solver

ID = "C4"
TITLE = "Minibatch SGD and its two key hyperparameters"
CLAIM_ZH = "梯度下降通过不断沿着反梯度方向更新参数求解；小批量随机梯度下降是深度学习默认的求解算法；两个重要的超参数是批量大小和学习率"
CLAIM_EN = ("Gradient descent solves by repeatedly stepping against the gradient; minibatch SGD is deep "
            "learning's default solver; its two key hyperparameters are the batch size and the learning rate.")
RUN = ("Summarises C2 (learning rate) and C3 (batch size), and adds one grid: softmax regression by "
       "SGD for every pair (learning rate, batch size), each given the same wall-clock budget; the "
       "training loss reached is shown as a heat map. Batch size 1 is plain SGD, batch size n is "
       "full-batch gradient descent.")
CRITERION = ("supported when C2 and C3 are supported, the best cell of the grid has a batch size "
             "strictly between 1 and n (minibatches beat both SGD and GD at equal time), and the loss "
             "varies by ≥ 2× along each axis through the best cell (both hyperparameters matter)")
DEPENDS = ("C2", "C3")


def run(config, deps=None) -> Result:
    Xtr, ytr, *_ = config.classification
    problem = problem_from(Xtr, ytr, dtype=torch.float32, k=10)
    n = problem.n_total
    lrs = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0]
    batches = [1, 8, 64, 512, n] if n > 1024 else [1, 8, 64, n]
    budget = config.size(0.1, 1.0)
    loss = np.full((len(lrs), len(batches)), np.nan)
    for i, lr in enumerate(lrs):
        for j, B in enumerate(batches):
            t0 = time.perf_counter()

            class Budget(Callback):
                def on_epoch(self, state, record):
                    return time.perf_counter() - t0 >= budget
            params, _, diverged = run_solver(problem, "sgd", epochs=100000, lr=lr, batch_size=B,
                                             seed=config.seed, callbacks=[Budget()])
            loss[i, j] = np.inf if diverged else float(problem.value(params))
    finite = np.where(np.isfinite(loss), loss, np.inf)
    bi, bj = np.unravel_index(np.argmin(finite), loss.shape)
    best_B, best_lr = batches[bj], lrs[bi]
    row, col = finite[bi, :], finite[:, bj]
    spread_B = float(np.max(row[np.isfinite(row)]) / finite[bi, bj])
    spread_lr = float(np.max(col[np.isfinite(col)]) / finite[bi, bj])
    deps = deps or {}
    c2, c3 = deps.get("C2"), deps.get("C3")
    checks = {f"C2 {c2.verdict if c2 else 'missing'}": bool(c2 and c2.verdict == "supported"),
              f"C3 {c3.verdict if c3 else 'missing'}": bool(c3 and c3.verdict == "supported"),
              f"best cell: batch {best_B}, lr {best_lr:g} (1 < batch < n)": 1 < best_B < n,
              f"loss varies {spread_B:.3g}× across batch sizes and {spread_lr:.3g}× across learning rates "
              f"(both ≥ 2)": spread_B >= 2 and spread_lr >= 2}
    verdict = verdict_from(checks)
    if (c2 is None or c3 is None) and verdict != "supported":
        verdict = INCONCLUSIVE
    numbers = {"learning_rates": lrs, "batch_sizes": batches,
               "loss_after_budget": [[float(v) if np.isfinite(v) else None for v in row] for row in loss],
               "best_batch_size": best_B, "best_lr": best_lr, "spread_across_batch": spread_B,
               "spread_across_lr": spread_lr,
               "C2_measured_threshold": c2.numbers["measured_threshold"] if c2 else None,
               "C3_best_batch_after_time_budget": c3.numbers["best_batch_after_time_budget"] if c3 else None}
    return Result(ID, TITLE, CLAIM_ZH, CLAIM_EN, RUN,
                  settings={"dataset": config.dataset, "time_budget_s": budget},
                  seed=config.seed, numbers=numbers, verdict=verdict, criterion=CRITERION,
                  reason=describe(checks),
                  nulls={"loss_after_budget": "None where that (learning rate, batch size) diverged",
                         "C2_measured_threshold": "None when C2 was not run",
                         "C3_best_batch_after_time_budget": "None when C3 was not run"})


def plot(result, folder) -> list[str]:
    n = result.numbers
    loss = np.asarray(n["loss_after_budget"], dtype=float)
    fig, ax = plt.subplots(figsize=(7, 4.4), layout="constrained")
    shown = np.ma.masked_invalid(np.log10(np.where(np.isfinite(loss) & (loss > 0), loss, np.nan)))
    im = ax.imshow(shown, cmap="viridis_r", aspect="auto")
    for i in range(loss.shape[0]):
        for j in range(loss.shape[1]):
            txt = "diverged" if not np.isfinite(loss[i, j]) else f"{loss[i, j]:.3f}"
            ax.text(j, i, txt, ha="center", va="center", fontsize=8,
                    color="white" if not shown.mask[i, j] and shown[i, j] > shown.mean() else "black")
    ax.set_xticks(range(len(n["batch_sizes"])), [str(b) for b in n["batch_sizes"]])
    ax.set_yticks(range(len(n["learning_rates"])), [f"{lr:g}" for lr in n["learning_rates"]])
    ax.set(xlabel="batch size (1 = SGD, n = full-batch GD)", ylabel="learning rate",
           title=f"Training loss after {result.settings['time_budget_s']:g} s of SGD")
    fig.colorbar(im, ax=ax, label="log10 loss")
    name = "C4_lr_batch_grid.png"
    return [result.save_figure(fig, folder, name)]
