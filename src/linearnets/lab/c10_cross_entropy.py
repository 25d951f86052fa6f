"""C10 — cross-entropy, not MSE: CE's gradient is ŷ − y; MSE through softmax vanishes when saturated."""

from __future__ import annotations

import numpy as np
import torch

from ..estimators import SoftmaxRegression
from ..losses import LOSSES
from ..plots import plt
from .base import Result, describe, verdict_from

ID = "C10"
TITLE = "Cross-entropy vs MSE on softmax outputs"
CLAIM_ZH = ("交叉熵的梯度是 ŷ−y，与误差成比例，而MSE的梯度是 (ŷ−y)·ŷ·(1−ŷ)，多了 ŷ(1−ŷ)。当预测概率接近1时候，"
            "多出的项接近于0，导致梯度消失，因此在训练后期MSE收敛速度要比交叉熵损失慢得多。"
            "真实标签 y=[0,0,1]，模型预测 ŷ=[0.1,0.1,0.8] 和 ŷ=[0.4,0.4,0.2] 的MSE可能相近，但后者完全分类错误。")
CLAIM_EN = ("The gradient of cross-entropy is ŷ − y, proportional to the error, whereas MSE's is "
            "(ŷ − y)·ŷ·(1 − ŷ); the extra factor ŷ(1 − ŷ) goes to 0 as predictions saturate, so the "
            "gradient vanishes and MSE converges much more slowly late in training. For y = [0, 0, 1], "
            "the predictions [0.1, 0.1, 0.8] and [0.4, 0.4, 0.2] may have similar MSE although the "
            "latter is wholly wrong.")
RUN = ("(1) The notes' worked example, both losses. (2) For k = 10 classes, logits with the true class's "
       "probability p swept from 1e-4 to 1 − 1e-4: loss value and gradient norm w.r.t. the logits of CE, of "
       "MSE on softmax (exact Jacobian), and of the notes' diagonal formula (ŷ−y)ŷ(1−ŷ). (3) The same "
       "SoftmaxRegression (SGD, batch 32, one learning rate for both: cross-entropy's lr \"curvature\") trained "
       "with each loss; epochs to a target test accuracy set from the data: 95 % of the better final "
       "accuracy of the two.")
CRITERION = ("supported when CE's gradient equals ŷ − y (to 1e-12), MSE's gradient norm at p = 1e-3 "
             "(confidently wrong) is ≤ 1/10 of CE's, and CE reaches the target test accuracy (95 % of the "
             "better final test accuracy of the two losses, so the bar follows the dataset) in fewer epochs "
             "than MSE (or MSE never does within the budget). The worked example is reported, not judged: "
             "it is an illustration, not the claim. Judged on work (epochs): exactly reproducible for a seed")
USES_DATASET = True
TARGET_FRACTION = 0.95

K = 10


def _family(p: float, dtype=torch.float64):
    """Logits (1, K) whose softmax gives the true class (index 0) probability p, the rest equal."""
    a = np.log(p * (K - 1) / (1 - p))
    Z = torch.zeros(1, K, dtype=dtype)
    Z[0, 0] = a
    Y = torch.zeros(1, K, dtype=dtype)
    Y[0, 0] = 1.0
    return Z, Y


def run(config, deps=None) -> Result:
    y = np.array([0.0, 0.0, 1.0])
    example = {}
    for name, yhat in (("confident right [0.1, 0.1, 0.8]", np.array([0.1, 0.1, 0.8])),
                       ("wrong [0.4, 0.4, 0.2]", np.array([0.4, 0.4, 0.2]))):
        example[name] = {"mse_mean": float(np.mean((yhat - y) ** 2)),
                         "half_sum_squares": float(0.5 * np.sum((yhat - y) ** 2)),
                         "cross_entropy": float(-np.log(yhat[2]))}
    (r, w) = example.values()
    ratio_mse = w["mse_mean"] / r["mse_mean"]
    ratio_ce = w["cross_entropy"] / r["cross_entropy"]

    ps = np.concatenate([np.logspace(-4, -0.31, 60), 1 - np.logspace(-0.31, -4, 60)[1:]])
    rows = {"p": ps.tolist(), "ce_loss": [], "mse_loss": [], "ce_grad": [], "mse_grad": [], "diag_grad": []}
    ce_err = 0.0
    for p in ps:
        Z, Y = _family(float(p))
        Lc, Gc = LOSSES["cross_entropy"].value_and_grad(Z, Y)
        Lm, Gm = LOSSES["mse"].value_and_grad(Z, Y)
        P = torch.softmax(Z, dim=1)
        ce_err = max(ce_err, float((Gc - (P - Y)).abs().max()))       # n = 1: G = ŷ − y
        rows["ce_loss"].append(float(Lc))
        rows["mse_loss"].append(float(Lm))
        rows["ce_grad"].append(float(Gc.norm()))
        rows["mse_grad"].append(float(Gm.norm()))
        rows["diag_grad"].append(float(((P - Y) * P * (1 - P)).norm()))
    Z, Y = _family(1e-3)
    ce_g = float(LOSSES["cross_entropy"].grad(Z, Y).norm())
    mse_g = float(LOSSES["mse"].grad(Z, Y).norm())

    Xtr, ytr, Xte, yte, _ = config.classification
    epochs = config.size(20, 50)
    curves, reach, lr = {}, {}, "curvature"
    for loss in ("cross_entropy", "mse"):
        m = SoftmaxRegression(solver="sgd", loss=loss, lr=lr, batch_size=32, epochs=epochs, seed=config.seed)
        m.fit(Xtr, ytr, eval_set=(Xte, yte))
        lr = m.lr_                                                # MSE trains at CE's rate: one SGD, two losses
        curves[loss] = {"test_acc": [h["val_accuracy"] for h in m.history_],
                        "train_loss": [h["loss"] for h in m.history_]}
    target = TARGET_FRACTION * max(c["test_acc"][-1] for c in curves.values())
    for loss, c in curves.items():
        reach[loss] = next((i + 1 for i, a in enumerate(c["test_acc"]) if a >= target), None)
    ce, mse = reach["cross_entropy"], reach["mse"]
    # a tie (both in the same epoch) is no evidence either way: inconclusive, not 'not supported'
    ce_faster = False if ce is None else True if mse is None or ce < mse else None if ce == mse else False
    checks = {f"CE gradient = ŷ − y (max error {ce_err:.1e})": ce_err <= 1e-12,
              f"at p = 1e-3: |∇MSE| = {mse_g:.2e} vs |∇CE| = {ce_g:.2f} (ratio {mse_g / ce_g:.1e} ≤ 0.1)":
                  mse_g / ce_g <= 0.1,
              f"epochs to test accuracy {target:.3f}: CE {reach['cross_entropy']}, MSE {reach['mse']}": ce_faster}
    reason = describe(checks) + (
        f". Worked example: mean-squared error 0.02 vs 0.32 ({ratio_mse:.0f}× apart), cross-entropy "
        f"{r['cross_entropy']:.3f} vs {w['cross_entropy']:.3f} ({ratio_ce:.1f}× apart) — here MSE is *not* "
        "similar for the two; the case for CE is its gradient")
    numbers = {"worked_example": example, "worked_example_ratio_mse": ratio_mse,
               "worked_example_ratio_ce": ratio_ce, "ce_grad_equals_yhat_minus_y_max_error": ce_err,
               "grad_norm_at_p_1e-3": {"cross_entropy": ce_g, "mse": mse_g},
               "target_accuracy": target, "target_fraction_of_best_final": TARGET_FRACTION, "lr": lr,
               "epochs_to_target": reach,
               "final_test_accuracy": {k: v["test_acc"][-1] for k, v in curves.items()}}
    return Result(ID, TITLE, CLAIM_ZH, CLAIM_EN, RUN,
                  settings={"classes": K, "dataset": config.dataset, "lr": "curvature (cross-entropy's, for both)",
                            "batch_size": 32,
                            "epochs": epochs, "mse_definition": "½‖softmax(o) − y‖², mean over samples"},
                  seed=config.seed, numbers=numbers, verdict=verdict_from(checks), criterion=CRITERION,
                  reason=reason, series={"sweep": rows, "curves": curves},
                  nulls={"epochs_to_target": "None for a loss that did not reach the target within the epochs"})


def plot(result, folder) -> list[str]:
    s = result.series["sweep"]
    p = np.asarray(s["p"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), layout="constrained")
    a, b, c = axes
    a.semilogx(p, s["ce_loss"], label="cross-entropy −log p")
    a.semilogx(p, s["mse_loss"], label="MSE ½‖ŷ − y‖²")
    a.set(xlabel="predicted probability of the true class p", ylabel="loss", title="Loss (k = 10)")
    b.loglog(p, s["ce_grad"], label="CE: ‖ŷ − y‖")
    b.loglog(p, s["mse_grad"], label="MSE, exact Jacobian: ‖J(ŷ − y)‖")
    b.loglog(p, s["diag_grad"], "--", label="notes: ‖(ŷ − y)ŷ(1 − ŷ)‖ (diagonal part)")
    b.set(xlabel="p (true class)", ylabel="‖∂loss/∂o‖", title="Gradient w.r.t. the logits", ylim=(1e-5, 3))
    curves = result.series["curves"]
    for loss, label in (("cross_entropy", "cross-entropy"), ("mse", "MSE")):
        acc = curves[loss]["test_acc"]
        c.plot(range(1, len(acc) + 1), acc, "o-", ms=3, label=label)
    c.axhline(result.numbers["target_accuracy"], color="grey", ls=":", label="target")
    c.set(xlabel="epoch", ylabel="test accuracy", title="Training with each loss (same SGD)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    name = "C10_cross_entropy_vs_mse.png"
    return [result.save_figure(fig, folder, name)]
