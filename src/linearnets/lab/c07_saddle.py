r"""C7 — on non-convex losses Newton can converge to a saddle point; SGD's noise helps escape.

The toy is a finite sum with a saddle:  F(θ) = (1/n) Σ_i f_i(θ),  θ = (u, v),

    f_i(u, v) = u² − v² + v⁴/4 + z_iᵀθ,    Σ_i z_i = 0,   z_i ~ N(0, σ² I)

so F(u, v) = u² − v² + v⁴/4 exactly: a saddle at (0, 0) (Hessian diag(2, −2)) and two minima
at (0, ±√2) with F = −1. A minibatch gradient is ∇F + mean of z_i over the batch: real SGD
noise from sampling, zero on average.
"""

from __future__ import annotations

import numpy as np

from ..plots import plt
from .base import Result, describe, verdict_from

ID = "C7"
TITLE = "Saddle points: Newton is attracted, SGD's noise escapes"
CLAIM_ZH = ("牛顿法寻找最优解最适合损失函数是凸函数的情况，但实践中损失函数可能异常复杂，极少存在凸函数的损失函数，"
            "牛顿法在非凸函数中很可能收敛在鞍点，而非极值点。随机梯度下降中利用到随机，有助于跳出局部最优解。")
CLAIM_EN = ("Newton's method suits convex losses, but real losses are rarely convex; on non-convex "
            "functions Newton is likely to converge to a saddle point rather than an extremum. The "
            "randomness of SGD helps it escape.")
RUN = ("F(u, v) = u² − v² + v⁴/4 written as a finite sum of n = 1000 terms with zero-mean linear "
       "perturbations (σ = 0.5), so minibatch gradients (batch 10) carry sampling noise. From A = (1, 0) "
       "(on the saddle's attracting line) and B = (1, 0.05) (off it): pure Newton (θ ← θ − H⁻¹∇F), "
       "full-batch gradient descent (lr 0.05) from A, and SGD (lr 0.05, batch 10) from A with 10 seeds, "
       "each for 300 steps.")
CRITERION = ("supported when Newton from both starts ends at a point with |∇F| ≤ 1e-8 where the Hessian "
             "has a negative eigenvalue (a saddle), and SGD from the same start A reaches a minimum "
             "(F ≤ −0.99) in at least 9 of 10 seeds. Judged on work (steps, values): exactly reproducible for a seed")

SIGMA, N, LR, STEPS, BATCH = 0.5, 1000, 0.05, 300, 10


def F(t):
    u, v = t
    return u * u - v * v + v ** 4 / 4


def grad(t):
    u, v = t
    return np.array([2 * u, -2 * v + v ** 3])


def hess(t):
    return np.array([[2.0, 0.0], [0.0, -2.0 + 3 * t[1] ** 2]])


def newton(t, steps=20):
    path = [np.array(t, float)]
    for _ in range(steps):
        t = path[-1] - np.linalg.solve(hess(path[-1]), grad(path[-1]))
        path.append(t)
        if np.abs(grad(t)).max() < 1e-14:
            break
    return np.array(path)


def gd(t, steps=STEPS):
    path = [np.array(t, float)]
    for _ in range(steps):
        path.append(path[-1] - LR * grad(path[-1]))
    return np.array(path)


def sgd(t, seed, steps=STEPS):
    rng = np.random.default_rng(seed)
    z = rng.normal(0, SIGMA, size=(N, 2))
    z -= z.mean(axis=0)                                   # the sum is exactly F
    path = [np.array(t, float)]
    perm, pos = rng.permutation(N), 0
    for _ in range(steps):
        if pos + BATCH > N:
            perm, pos = rng.permutation(N), 0
        noise = z[perm[pos:pos + BATCH]].mean(axis=0)
        pos += BATCH
        path.append(path[-1] - LR * (grad(path[-1]) + noise))
    return np.array(path)


def run(config, deps=None) -> Result:
    A, B = (1.0, 0.0), (1.0, 0.05)
    newton_paths = {"A": newton(A), "B": newton(B)}
    gd_path = gd(A)
    seeds = [config.seed * 100 + s for s in range(10)]
    sgd_paths = [sgd(A, s) for s in seeds]
    ends = {name: p[-1] for name, p in newton_paths.items()}
    at_saddle = {name: bool(np.abs(grad(t)).max() <= 1e-8 and np.linalg.eigvalsh(hess(t)).min() < 0)
                 for name, t in ends.items()}
    escaped = [bool(F(p[-1]) <= -0.99) for p in sgd_paths]
    gd_end = gd_path[-1]
    checks = {f"Newton from A ends at {np.round(ends['A'], 10).tolist()}, a saddle": at_saddle["A"],
              f"Newton from B ends at {np.round(ends['B'], 10).tolist()}, a saddle": at_saddle["B"],
              f"SGD from A escapes in {sum(escaped)}/10 seeds (≥ 9)": sum(escaped) >= 9}
    numbers = {"newton_end": {k: v for k, v in ends.items()},
               "newton_iterations": {k: len(p) - 1 for k, p in newton_paths.items()},
               "newton_end_hessian_eigenvalues": {k: np.linalg.eigvalsh(hess(t)) for k, t in ends.items()},
               "newton_end_grad_norm": {k: float(np.abs(grad(t)).max()) for k, t in ends.items()},
               "gd_end_from_A": gd_end, "gd_end_loss": F(gd_end),
               "sgd_escaped": sum(escaped), "sgd_final_losses": [F(p[-1]) for p in sgd_paths],
               "saddle_loss": 0.0, "minimum_loss": -1.0}
    return Result(ID, TITLE, CLAIM_ZH, CLAIM_EN, RUN,
                  settings={"n": N, "sigma": SIGMA, "lr": LR, "batch_size": BATCH, "steps": STEPS,
                            "starts": {"A": A, "B": B}, "seeds": seeds},
                  seed=config.seed, numbers=numbers, verdict=verdict_from(checks), criterion=CRITERION,
                  reason=describe(checks) + f"; plain GD from A ends at F = {F(gd_end):.3g} (the saddle: "
                                            "no noise, no escape)",
                  series={"newton": newton_paths, "gd": gd_path, "sgd": sgd_paths})


def plot(result, folder) -> list[str]:
    s = result.series
    fig, ax = plt.subplots(figsize=(7.5, 5.5), layout="constrained")
    u, v = np.meshgrid(np.linspace(-1.2, 1.2, 200), np.linspace(-2.0, 2.0, 200))
    ax.contourf(u, v, F((u, v)), levels=30, cmap="RdBu_r", alpha=0.75)
    ax.contour(u, v, F((u, v)), levels=[0.0], colors="k", linewidths=0.6)
    for i, p in enumerate(s["sgd"]):
        ax.plot(p[:, 0], p[:, 1], color="C2", lw=0.8, alpha=0.8, label="SGD from A (10 seeds)" if i == 0 else None)
    for name, style in (("A", "o-"), ("B", "s-")):
        p = s["newton"][name]
        ax.plot(p[:, 0], p[:, 1], style, color="k", ms=4, label=f"Newton from {name}")
    ax.plot(s["gd"][:, 0], s["gd"][:, 1], color="C1", lw=3, ls="--", zorder=3, label="gradient descent from A")
    ax.plot([0], [0], marker="X", color="yellow", mec="k", ms=14, ls="", label="saddle (0, 0)")
    ax.plot([0, 0], [-2 ** 0.5, 2 ** 0.5], marker="*", color="white", mec="k", ms=16, ls="", label="minima (0, ±√2)")
    ax.set(xlabel="u", ylabel="v", title="F(u, v) = u² − v² + v⁴/4")
    ax.legend(fontsize=8, loc="upper right")
    name = "C7_saddle.png"
    return [result.save_figure(fig, folder, name)]
