"""C4 — minibatch SGD is the default solver; lr and batch size are its two key hyperparameters."""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from ..autolr import curvatures
from ..params import Params
from ..plots import plt
from .base import INCONCLUSIVE, SUPPORTED, Result, describe, verdict_from
from .tracking import problem_from, run_solver, subset

ID = "C4"
TITLE = "Minibatch SGD and its two key hyperparameters"
CLAIM_ZH = "梯度下降通过不断沿着反梯度方向更新参数求解；小批量随机梯度下降是深度学习默认的求解算法；两个重要的超参数是批量大小和学习率"
CLAIM_EN = ("Gradient descent solves by repeatedly stepping against the gradient; minibatch SGD is deep "
            "learning's default solver; its two key hyperparameters are the batch size and the learning rate.")
RUN = ("Summarises C2 (learning rate) and C3 (batch size), and adds one grid: softmax regression by "
       "SGD from zero for every pair (learning rate, batch size), each given the same work — the same "
       "number of samples processed (E epochs over the same rows), so batch 1 takes n·E steps and batch "
       "n (full-batch gradient descent) E steps. The learning rates are multiples of 1/λ_max, the "
       "inverse of the full-batch curvature at the start, so the grid fits any dataset's scale. The "
       "training loss reached is shown as a heat map; the seconds each cell took are shown beside, not "
       "judged.")
CRITERION = ("supported when C2 and C3 are supported and, at equal samples processed: (1) full-batch "
             "GD's best loss is ≥ 2× the grid's best (one step per pass over the data wastes samples); "
             "(2) some minibatch 1 < B < n reaches within 1.5× of the grid's best loss while taking ≥ 8× "
             "fewer steps than batch 1 (nearly the per-sample progress of B = 1 in steps that each "
             "parallelise B rows — C3 — which is why minibatches are the default); (3) the learning rate "
             "matters: along the best batch size, the loss varies ≥ 2× across rates (or some rate "
             "diverges). Judged on work: exactly reproducible for a seed")
DEPENDS = ("C2", "C3")
USES_DATASET = True
LR_MULTIPLES = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)


def dependency(result) -> bool | None:
    """A claim this one builds on, as a check: supported → True, inconclusive (a measured claim whose
    spread straddles its threshold) → None, so this verdict is inconclusive too, never flipped."""
    if result is None:
        return False
    return {SUPPORTED: True, INCONCLUSIVE: None}.get(result.verdict, False)


def run(config, deps=None) -> Result:
    Xtr, ytr, *_ = config.classification
    problem = subset(problem_from(Xtr, ytr, dtype=torch.float32, k=config.k), config.size(2000, 10000))
    n = problem.n_total
    epochs = config.size(3, 5)
    lam, _ = curvatures(problem.objective, problem.source, Params.zeros(problem.d, problem.k, dtype=problem.dtype),
                        seed=config.seed)
    lrs = [m / lam for m in LR_MULTIPLES]
    batches = [1, 8, 64, 512, n] if n > 1024 else [1, 8, 64, n]
    loss = np.full((len(lrs), len(batches)), np.nan)
    seconds = np.zeros_like(loss)
    for i, lr in enumerate(lrs):
        for j, B in enumerate(batches):
            t0 = time.perf_counter()
            params, _, diverged = run_solver(problem, "sgd", epochs=epochs, lr=lr, batch_size=B, seed=config.seed)
            seconds[i, j] = time.perf_counter() - t0
            loss[i, j] = np.inf if diverged else float(problem.value(params))
    finite = np.where(np.isfinite(loss), loss, np.inf)
    best = float(finite.min())
    bi, bj = np.unravel_index(np.argmin(finite), loss.shape)
    per_batch = finite.min(axis=0)                              # best over learning rates, per batch size
    floor = max(best, 1e-12)
    gd_ratio = float(per_batch[-1] / floor)
    steps = [epochs * -(-n // B) for B in batches]
    minibatch = [(per_batch[j] / floor, batches[j]) for j in range(1, len(batches) - 1)
                 if steps[0] >= 8 * steps[j]]
    near = min(minibatch) if minibatch else (math.inf, None)
    column = finite[:, bj]
    lr_spread = float(np.max(column[np.isfinite(column)]) / floor)
    lr_diverges = bool(np.isinf(column).any())
    deps = deps or {}
    c2, c3 = deps.get("C2"), deps.get("C3")
    checks = {f"C2 {c2.verdict if c2 else 'missing'}": dependency(c2),
              f"C3 {c3.verdict if c3 else 'missing'}": dependency(c3),
              f"full-batch GD's best loss is {gd_ratio:.3g}× the grid's best (≥ 2)": gd_ratio >= 2,
              f"batch {near[1]} reaches {near[0]:.3g}× the grid's best (≤ 1.5) in "
              f"{(steps[0] / steps[batches.index(near[1])]) if near[1] else 0:.0f}× fewer steps than batch 1 (≥ 8)":
                  near[0] <= 1.5,
              f"at batch {batches[bj]}, the loss varies {lr_spread:.3g}× across learning rates"
              f"{' (some diverge)' if lr_diverges else ''} (≥ 2)": lr_spread >= 2 or lr_diverges}
    verdict = verdict_from(checks)
    if (c2 is None or c3 is None) and verdict != "supported":
        verdict = INCONCLUSIVE
    numbers = {"rows": n, "epochs": epochs, "samples_per_cell": epochs * n, "lambda_max_at_start": lam,
               "lr_multiples_of_inverse_lambda": list(LR_MULTIPLES), "learning_rates": lrs, "batch_sizes": batches,
               "steps_per_cell": steps,
               "loss_at_equal_samples": [[float(v) if np.isfinite(v) else None for v in row] for row in loss],
               "best_batch_size": batches[bj], "best_lr": lrs[bi], "best_loss": best,
               "gd_over_best": gd_ratio, "closest_minibatch": {"batch_size": near[1], "over_best": near[0]},
               "lr_spread_at_best_batch": lr_spread,
               "C2_measured_threshold": c2.numbers["measured_threshold"] if c2 else None}
    return Result(ID, TITLE, CLAIM_ZH, CLAIM_EN, RUN,
                  settings={"dataset": config.dataset, "rows": n, "epochs": epochs, "lr_multiples": list(LR_MULTIPLES)},
                  seed=config.seed, numbers=numbers, verdict=verdict, criterion=CRITERION,
                  reason=describe(checks), timings={"seconds_per_cell": seconds,      # measured: beside the key numbers
                           "C3_fastest_batch_size": c3.numbers["fastest_batch_size"] if c3 else None},
                  nulls={"loss_at_equal_samples": "None where that (learning rate, batch size) diverged",
                         "closest_minibatch": "None when no batch size between 1 and n takes 8× fewer steps",
                         "C2_measured_threshold": "None when C2 was not run"})


def plot(result, folder) -> list[str]:
    n = result.numbers
    loss = np.asarray([[np.inf if v is None else v for v in row] for row in n["loss_at_equal_samples"]], dtype=float)
    secs = np.asarray(result.timings["seconds_per_cell"], dtype=float)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 4.6), layout="constrained")
    ok = np.isfinite(loss)
    shown = np.ma.masked_array(np.log10(np.where(ok, np.maximum(loss, 1e-12), 1.0)), mask=~ok)
    im = ax.imshow(shown, cmap="viridis_r", aspect="auto")
    mid = float(shown.mean()) if shown.count() else 0.0
    for i in range(loss.shape[0]):
        for j in range(loss.shape[1]):
            txt = "diverged" if not ok[i, j] else f"{loss[i, j]:.3f}"
            ax.text(j, i, txt, ha="center", va="center", fontsize=8,
                    color="white" if ok[i, j] and shown[i, j] > mid else "black")
    xt = [f"{b}\n({s} steps)" for b, s in zip(n["batch_sizes"], n["steps_per_cell"])]
    yt = [f"{m:g}/λ = {lr:.3g}" for m, lr in zip(n["lr_multiples_of_inverse_lambda"], n["learning_rates"])]
    ax.set_xticks(range(len(xt)), xt, fontsize=8)
    ax.set_yticks(range(len(yt)), yt, fontsize=8)
    ax.set(xlabel="batch size (1 = SGD, n = full-batch GD)", ylabel="learning rate",
           title=f"Training loss after {n['samples_per_cell']} samples ({n['epochs']} epochs) per cell")
    fig.colorbar(im, ax=ax, label="log10 loss")
    per_batch = np.where(ok, loss, np.inf).min(axis=0)
    keep = np.isfinite(per_batch)
    bx.loglog(np.asarray(n["batch_sizes"])[keep], per_batch[keep], "o-", label="best loss over learning rates")
    bx2 = bx.twinx()
    bx2.loglog(n["batch_sizes"], secs.sum(axis=0), "s--", color="C1", label="seconds for the row of rates")
    bx2.set_ylabel("seconds (not judged)", color="C1")
    bx.set(xlabel="batch size", ylabel="training loss at equal samples", title="Per batch size: loss and time")
    bx.grid(alpha=0.3, which="both")
    bx.legend(loc="upper left", fontsize=8)
    bx2.legend(loc="lower right", fontsize=8)
    name = "C4_lr_batch_grid.png"
    return [result.save_figure(fig, folder, name)]
