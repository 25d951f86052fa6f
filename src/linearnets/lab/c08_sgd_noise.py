"""C8 — SGD's noise acts as a regulariser and can help generalisation."""

from __future__ import annotations

import numpy as np
import torch

from ..autolr import auto_lr
from ..params import Params
from ..plots import plt
from .base import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, Result
from .tracking import Track, accuracy, problem_from, run_solver

ID = "C8"
TITLE = "Does SGD's noise help generalisation? Small data, many parameters"
CLAIM_ZH = ("随机梯度下降中的随机其实给数据带来的噪声，在高纬度深层次的神经网络训练中，"
            "有利于提高模型对噪声的抗干扰能力，提高模型的鲁棒性和泛化性能，避免过拟合。")
CLAIM_EN = ("The randomness in SGD injects noise that, in high-dimensional deep networks, makes the model "
            "more robust to noise, improves robustness and generalisation, and avoids overfitting.")
RUN = ("Over-parameterised softmax regression: a small random training subset (fewer samples than "
       "parameters), tested on the whole test split. SGD (batch 8) and full-batch GD at the same "
       "learning rate (lr = \"curvature\" for batch 8 — the curvature rule, safe for both), each trained from zero until its "
       "training loss reaches the same target (so both fit the data equally well; each has a cap of "
       "epochs), and the regularised optimum (weight decay 1e-4, needed for a finite optimum: Newton "
       "when the Hessian is small, L-BFGS otherwise) run to convergence. Repeated over several seeds "
       "(different subsets and shuffles); mean ± standard deviation.")
CRITERION = ("supported when SGD's mean test accuracy exceeds GD's by more than twice the standard error "
             "of the difference; not supported when GD's exceeds SGD's by that much; inconclusive "
             "otherwise (the effect, if any, is within the seed-to-seed spread) — and inconclusive when "
             "either solver missed the loss target in some seed (they would not fit equally well). "
             "Judged on work: exactly reproducible for a seed")
USES_DATASET = True
TARGET = 0.05


def run(config, deps=None) -> Result:
    Xtr, ytr, Xte, yte, _ = config.classification
    k = config.k
    n_small = min(config.size(100, 200), len(ytr))
    seeds = [config.seed * 100 + s for s in range(config.size(5, 10))]
    caps = {"sgd": config.size(500, 2000), "gd": config.size(5000, 20000)}
    test = problem_from(Xte, yte, k=k, dtype=torch.float32)
    results = {"sgd": [], "gd": [], "newton": []}
    lrs, missed = [], []
    p_params = (Xtr.shape[1] + 1) * k
    optimum_solver = "newton" if p_params <= 1500 else "lbfgs"
    for s in seeds:
        rng = np.random.default_rng(s)
        idx = rng.choice(len(ytr), n_small, replace=False)
        train32 = problem_from(Xtr[idx], ytr[idx], k=k, dtype=torch.float32)
        lr = auto_lr(train32.objective, train32.source, Params.zeros(train32.d, k, dtype=train32.dtype),
                     batch_size=8, seed=s)
        lrs.append(lr)
        for solver, settings in (("sgd", dict(lr=lr, batch_size=8, seed=s)), ("gd", dict(lr=lr, tol=0.0))):
            track = Track(train32, stop_below=TARGET)
            params, history, diverged = run_solver(train32, solver, epochs=caps[solver], callbacks=[track], **settings)
            if diverged or track.values[-1] > TARGET:
                missed.append(f"{solver}, seed {s}")
            results[solver].append({"train_acc": accuracy(train32, params), "test_acc": accuracy(test, params),
                                    "train_loss": track.values[-1], "epochs": len(track.values),
                                    "weight_norm": float(params.W.norm())})
        train64 = problem_from(Xtr[idx], ytr[idx], k=k, weight_decay=1e-4)
        params, _, _ = run_solver(train64, optimum_solver, epochs=config.size(200, 500), tol=1e-9)
        p32 = Params(params.W.float(), params.b.float())
        results["newton"].append({"train_acc": accuracy(train32, p32), "test_acc": accuracy(test, p32),
                                  "train_loss": float(train32.value(p32)), "epochs": None,
                                  "weight_norm": float(params.W.norm())})
    summary = {}
    for name, rows in results.items():
        acc = np.array([r["test_acc"] for r in rows])
        summary[name] = {"test_acc_mean": float(acc.mean()), "test_acc_std": float(acc.std(ddof=1)),
                         "train_acc_mean": float(np.mean([r["train_acc"] for r in rows])),
                         "train_loss_mean": float(np.mean([r["train_loss"] for r in rows])),
                         "weight_norm_mean": float(np.mean([r["weight_norm"] for r in rows]))}
    a = np.array([r["test_acc"] for r in results["sgd"]])
    b = np.array([r["test_acc"] for r in results["gd"]])
    diff = float(a.mean() - b.mean())
    se = float(np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)))
    paired = float(np.mean(a - b))
    if missed:
        verdict = INCONCLUSIVE
    elif diff > 2 * se:
        verdict = SUPPORTED
    elif diff < -2 * se:
        verdict = NOT_SUPPORTED
    else:
        verdict = INCONCLUSIVE
    reason = (f"test accuracy SGD {summary['sgd']['test_acc_mean']:.3f} ± {summary['sgd']['test_acc_std']:.3f}, "
              f"GD {summary['gd']['test_acc_mean']:.3f} ± {summary['gd']['test_acc_std']:.3f}, "
              f"optimum {summary['newton']['test_acc_mean']:.3f} ± {summary['newton']['test_acc_std']:.3f}; "
              f"SGD − GD = {diff:+.3f}, 2·SE = {2 * se:.3f}"
              + (f"; missed the loss target {TARGET:g}: {', '.join(missed)}" if missed else "") + f" → {verdict}")
    numbers = {"n_train": n_small, "parameters": p_params, "summary": summary,
               "sgd_minus_gd": diff, "standard_error": se, "paired_mean_difference": paired,
               "learning_rates": lrs, "missed_target": missed, "per_seed": results}
    return Result(ID, TITLE, CLAIM_ZH, CLAIM_EN, RUN,
                  settings={"dataset": config.dataset, "n_train": n_small, "lr": "curvature (batch 8)", "sgd_batch_size": 8,
                            "train_loss_target": TARGET, "epoch_caps": caps, "optimum_solver": optimum_solver,
                            "optimum_weight_decay": 1e-4, "seeds": seeds},
                  seed=config.seed, numbers=numbers, verdict=verdict, criterion=CRITERION, reason=reason,
                  nulls={"per_seed": "the optimum's epochs are None: it runs to convergence, not to the loss target"})


def plot(result, folder) -> list[str]:
    res = result.numbers["per_seed"]
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    names = ["sgd", "gd", "newton"]
    labels = ["SGD (batch 8)", "full-batch GD", "optimum (λ = 1e-4)"]
    for i, name in enumerate(names):
        tr = [r["train_acc"] for r in res[name]]
        te = [r["test_acc"] for r in res[name]]
        jitter = np.linspace(-0.08, 0.08, len(te))
        ax.scatter(i - 0.15 + jitter, tr, color="C0", s=18, label="train" if i == 0 else None)
        ax.scatter(i + 0.15 + jitter, te, color="C3", s=18, label="test" if i == 0 else None)
        ax.errorbar(i + 0.15, np.mean(te), yerr=np.std(te, ddof=1), color="k", capsize=6, lw=2)
    ax.set_xticks(range(3), labels)
    ax.set(ylabel="accuracy", title=f"{result.numbers['n_train']} training samples, "
                                    f"{result.numbers['parameters']} parameters")
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    name = "C8_sgd_noise.png"
    return [result.save_figure(fig, folder, name)]
