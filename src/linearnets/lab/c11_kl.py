"""C11 — cross-entropy = KL divergence + H(P); with one-hot labels H(P) = 0 and they coincide."""

from __future__ import annotations

import numpy as np
import torch

from ..estimators import SoftmaxRegression
from ..losses import LOSSES, entropy, one_hot, smooth_labels
from ..plots import plt
from .base import Result, describe, timeit, verdict_from
from .tracking import logits

ID = "C11"
TITLE = "Cross-entropy and KL divergence: equal gradients, values apart by H(P)"
CLAIM_ZH = ("在分类任务中cross Entropy 和KLD等价……D_KL(P∥Q) = H(P,Q) − H(P)；在分类任务中，实际概率分布P为one-hot编码，"
            "H(P)为0。梯度优化：与KL散度完全一致。KL散度适用于生成模型、非one-hot分布（如知识蒸馏）。")
CLAIM_EN = ("In classification, cross-entropy and KL divergence are equivalent: D_KL(P‖Q) = H(P, Q) − H(P), "
            "and with one-hot P, H(P) = 0. Their gradients are identical; KL matters for non-one-hot "
            "targets such as knowledge distillation.")
RUN = ("Logits from a softmax regression trained on the training split, evaluated on the test split, "
       "against three kinds of targets: one-hot labels, label-smoothed labels (ε = 0.1) and a teacher's "
       "tempered probabilities (softmax(o/T), T = 4). For each, in float32 and float64: the largest "
       "|CE − KL − H(P)| per sample, the largest difference between CE's analytic gradient and KL's gradient by autograd, and the "
       "time per call of each loss (value and gradient).")
CRITERION = ("supported when, in float32 and in float64, per sample |CE − KL − H(P)| ≤ c·ε·(|CE| + |KL| + H(P)) "
             "and the gradients differ by ≤ c·ε·max|∇CE| (ε the dtype's machine epsilon, c = 64: a few "
             "roundings of each term — a tolerance from the arithmetic, not from digits' magnitudes), and "
             "H(P) = 0 for one-hot targets, H(P) > 0 for soft ones (so CE and KL differ in value, not in "
             "gradient). Judged on work (values, not seconds): exactly reproducible for a seed; the time per "
             "call is shown beside")
USES_DATASET = True
ROUNDINGS = 64


def _per_sample(loss, Z, Y):
    """Per-sample values: n calls would be slow; the mean of a single row is the row's value."""
    return torch.stack([loss.value(Z[i:i + 1], Y[i:i + 1]) for i in range(Z.shape[0])])


def run(config, deps=None) -> Result:
    Xtr, ytr, Xte, yte, _ = config.classification
    model = SoftmaxRegression(solver="lbfgs", epochs=None, tol=1e-4, weight_decay=1e-3).fit(Xtr, ytr)  # logits to check on
    Z_test = logits(model, Xte)                                           # (n, k) float64
    k = Z_test.shape[1]
    labels = torch.as_tensor(np.searchsorted(model.classes_, yte))
    m = min(len(yte), 500)                                                # per-sample checks on a subset
    rows, checks, timings = {}, {}, {}
    for dtype in (torch.float32, torch.float64):
        eps = torch.finfo(dtype).eps
        Z = torch.as_tensor(Z_test, dtype=dtype)
        hard = one_hot(labels, k, dtype)
        targets = {"one-hot": hard, "label smoothing 0.1": smooth_labels(hard, 0.1),
                   "teacher T=4": torch.softmax(Z / 4.0, dim=1)}
        for name, Y in targets.items():
            ce = _per_sample(LOSSES["cross_entropy"], Z[:m], Y[:m])
            kl = _per_sample(LOSSES["kl"], Z[:m], Y[:m])
            H = entropy(Y[:m])
            gap = float((ce - kl - H).abs().max())
            rel_gap = float(((ce - kl - H).abs() / (ce.abs() + kl.abs() + H).clamp_min(torch.finfo(dtype).tiny)).max())
            _, g_ce = LOSSES["cross_entropy"].value_and_grad(Z, Y)       # analytic: (ŷ − y)/n
            Zr = Z.clone().requires_grad_(True)                          # KL's gradient by autograd,
            (g_kl,) = torch.autograd.grad(LOSSES["kl"].value(Zr, Y), Zr)  # independent of the CE code
            gdiff = float((g_ce - g_kl).abs().max())
            rel_gdiff = gdiff / float(g_ce.abs().max())
            t_ce = timeit(lambda: LOSSES["cross_entropy"].value_and_grad(Z, Y), repeats=20)
            t_kl = timeit(lambda: LOSSES["kl"].value_and_grad(Z, Y), repeats=20)
            key = f"{name}, {str(dtype).removeprefix('torch.')}"
            rows[key] = {"max_abs_ce_minus_kl_minus_H": gap, "max_abs_ce_minus_kl": float((ce - kl).abs().max()),
                         "max_relative_gap": rel_gap, "mean_entropy_H": float(H.mean()),
                         "max_grad_difference": gdiff, "max_relative_grad_difference": rel_gdiff,
                         "tolerance_relative": ROUNDINGS * eps}
            timings[key] = {"ce_seconds_per_call": t_ce, "kl_seconds_per_call": t_kl}
            tol = ROUNDINGS * eps
            entropy_ok = float(H.max()) == 0.0 if name == "one-hot" else float(H.mean()) > 0
            checks[f"{key}: relative gap {rel_gap:.1e}, gradient difference {rel_gdiff:.1e} (≤ {tol:.1e}), "
                   f"H(P) = {float(H.mean()):.3f}"] = rel_gap <= tol and rel_gdiff <= tol and entropy_ok
    numbers = {"rows": rows, "n_samples_checked": m, "n_samples_timed": len(yte), "classes": k}
    return Result(ID, TITLE, CLAIM_ZH, CLAIM_EN, RUN,
                  settings={"dataset": config.dataset, "label_smoothing": 0.1, "teacher_temperature": 4.0},
                  seed=config.seed, numbers=numbers, verdict=verdict_from(checks), criterion=CRITERION,
                  reason=describe(checks), timings=timings)


def plot(result, folder) -> list[str]:
    rows = result.numbers["rows"]
    names = list(rows)
    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4.2), layout="constrained")
    y = np.arange(len(names))
    floor = 1e-18
    a.barh(y - 0.2, [max(rows[n]["max_abs_ce_minus_kl"], floor) for n in names], 0.4, label="max |CE − KL|")
    a.barh(y + 0.2, [max(rows[n]["max_abs_ce_minus_kl_minus_H"], floor) for n in names], 0.4,
           label="max |CE − KL − H(P)|")
    a.set_xscale("log")
    a.set_yticks(y, names, fontsize=8)
    a.set(xlabel="absolute difference (per sample)", title="Values: KL = CE − H(P)")
    a.legend(fontsize=8)
    times = result.timings
    b.barh(y - 0.2, [times[n]["ce_seconds_per_call"] * 1e6 for n in names], 0.4, label="cross-entropy")
    b.barh(y + 0.2, [times[n]["kl_seconds_per_call"] * 1e6 for n in names], 0.4, label="KL divergence")
    b.set_yticks(y, names, fontsize=8)
    b.set(xlabel="µs per call (value + gradient)", title="Cost")
    b.legend(fontsize=8)
    for ax in (a, b):
        ax.grid(alpha=0.3, axis="x")
    name = "C11_cross_entropy_vs_kl.png"
    return [result.save_figure(fig, folder, name)]
