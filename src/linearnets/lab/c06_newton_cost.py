"""C6 — Newton needs O(p²) memory and O(p³) time in the number of parameters p."""

from __future__ import annotations

import numpy as np
import torch

from .. import data
from ..params import Params
from ..plots import plt
from .base import TIME, Result, describe, interleaved_times, power_law_exponent, robust, verdict_from, within
from .tracking import problem_from

ID = "C6"
TITLE = "The cost of Newton's method: Hessian memory O(p²), solve time O(p³)"
CLAIM_ZH = ("牛顿法要用到Hessian矩阵和Hessian矩阵的逆矩阵，需要求二阶导和二阶导的逆，"
            "对内存的消耗达到O(n^2)甚至O（n^3）的程度，这对大规模数据量训练是不可接受的。")
CLAIM_EN = ("Newton's method needs the Hessian and its inverse — second derivatives and their inversion — "
            "costing O(n²) memory and even O(n³) time in the number of parameters, which is "
            "unacceptable for large-scale training.")
RUN = ("Softmax regression (k = 10 classes) on synthetic Gaussian data with a growing number of "
       "features d, so p = (d+1)·k parameters. For each p: the bytes of the Hessian tensor, the time to "
       "form it and the time to solve the Newton system by Cholesky, and, as the counterpoint, the bytes "
       "Newton-CG holds (its CG vectors and one Hessian-vector product's temporaries) and the time of one "
       "Hessian-vector product. Times are taken on one thread (the O(p³) count of operations, not the "
       "machine's parallelism), the sizes interleaved and repeated: the minimum over repeats is the "
       "estimate, the median shows the effect of other load. Power laws are fitted on log–log axes "
       "over the largest sizes.")
CRITERION = ("supported when the fitted exponent of Hessian memory is within 2 ± 0.1 (bytes: exact), that "
             "of the solve time within 3 ± 0.6 (Cholesky is p³/3 operations; below ~10⁹ operations cache "
             "effects and call overheads flatten the curve, hence the wide band and the fit over the "
             "largest four sizes), and Newton-CG's memory grows with exponent ≤ 1.2 (vectors of p). The "
             "solve-time exponent is measured: when its estimates from minimum and from median times fall "
             "on both sides of the band, the verdict is inconclusive")


def run(config, deps=None) -> Result:
    ds_d = config.size([16, 32, 64, 128, 192, 256], [32, 64, 128, 256, 384, 512])
    n = config.size(2000, 5000)
    repeats = config.size(5, 7)
    rows, solves, forms, hvps = [], {}, {}, {}
    for d in ds_d:
        X, y = data.synthetic_classification(n=n, d=d, k=10, seed=config.seed, dtype=np.float64)
        problem = problem_from(X, y, k=10, weight_decay=1e-3)
        params = Params.zeros(d, 10, dtype=torch.float64)
        params.W.normal_(0, 0.01, generator=torch.Generator().manual_seed(config.seed))
        p = (d + 1) * 10
        H = problem.hessian(params)
        H.diagonal().add_(1e-8 * float(H.diagonal().mean()))   # Newton's damping: softmax's shift direction
        g = torch.randn(p, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        VW, Vb = torch.randn_like(params.W), torch.randn_like(params.b)
        solves[p] = lambda H=H, g=g: torch.cholesky_solve(g[:, None], torch.linalg.cholesky(H))
        forms[p] = lambda problem=problem, params=params: problem.hessian(params)
        hvps[p] = lambda problem=problem, params=params, VW=VW, Vb=Vb: problem.hvp(params, VW, Vb)
        item = H.element_size()
        cg_bytes = 5 * p * item + 3 * n * 10 * item       # x, r, p, Hp, g + Z, Z_V, M of one hvp
        rows.append({"d": d, "p": p, "hessian_bytes": H.nelement() * item, "newton_cg_bytes": cg_bytes})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        solve_t = interleaved_times(solves, repeats=repeats)
        form_t = interleaved_times(forms, repeats=max(2, repeats // 2))
        hvp_t = interleaved_times(hvps, repeats=repeats)
    finally:
        torch.set_num_threads(threads)
    solve_min, solve_med = robust(solve_t)
    form_min, _ = robust(form_t)
    hvp_min, _ = robust(hvp_t)
    for r in rows:
        r.update(solve_seconds=solve_min[r["p"]], solve_seconds_median=solve_med[r["p"]],
                 form_seconds=form_min[r["p"]], hvp_seconds=hvp_min[r["p"]])
    p = [r["p"] for r in rows]
    top = slice(-4, None)
    e_mem = power_law_exponent(p, [r["hessian_bytes"] for r in rows])
    e_solve = power_law_exponent(p[top], [r["solve_seconds"] for r in rows][top])
    e_solve_med = power_law_exponent(p[top], [r["solve_seconds_median"] for r in rows][top])
    e_form = power_law_exponent(p[top], [r["form_seconds"] for r in rows][top])
    e_cg = power_law_exponent(p, [r["newton_cg_bytes"] for r in rows])
    checks = {f"memory exponent {e_mem:.2f} ∈ [1.9, 2.1]": 1.9 <= e_mem <= 2.1,
              f"solve-time exponent {e_solve:.2f} ({e_solve_med:.2f} from median times) ∈ [2.4, 3.6]":
                  within([e_solve, e_solve_med], 2.4, 3.6),
              f"Newton-CG memory exponent {e_cg:.2f} ≤ 1.2": e_cg <= 1.2}
    numbers = {"rows": rows, "memory_exponent": e_mem, "solve_time_exponent": e_solve,
               "solve_time_exponent_median": e_solve_med,
               "form_time_exponent": e_form, "newton_cg_memory_exponent": e_cg,
               "largest_p": p[-1], "largest_hessian_MiB": rows[-1]["hessian_bytes"] / 2**20,
               "hessian_MiB_at_fashion_mnist_p_7850": 7850 ** 2 * 8 / 2**20}
    return Result(ID, TITLE, CLAIM_ZH, CLAIM_EN, RUN,
                  settings={"n": n, "k": 10, "feature_counts": ds_d, "dtype": "float64", "timing_threads": 1,
                            "repeats": repeats},
                  seed=config.seed, numbers=numbers, verdict=verdict_from(checks), criterion=CRITERION,
                  reason=describe(checks) + f"; forming the Hessian scales as p^{e_form:.2f} at fixed n "
                                            "(n·p² work)",
                  judged_on=TIME, repeats=repeats, spread={"solve_time_exponent": [e_solve, e_solve_med]})


def plot(result, folder) -> list[str]:
    rows = result.numbers["rows"]
    p = np.array([r["p"] for r in rows], float)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    mem = np.array([r["hessian_bytes"] for r in rows], float)
    cg = np.array([r["newton_cg_bytes"] for r in rows], float)
    a.loglog(p, mem / 2**20, "o-", label=f"Newton: Hessian (∝ p^{result.numbers['memory_exponent']:.2f})")
    a.loglog(p, cg / 2**20, "s-", label=f"Newton-CG (∝ p^{result.numbers['newton_cg_memory_exponent']:.2f})")
    a.set(xlabel="parameters p = (d+1)·k", ylabel="MiB", title="Memory")
    a.legend(fontsize=8)
    solve = np.array([r["solve_seconds"] for r in rows])
    form = np.array([r["form_seconds"] for r in rows])
    hvp = np.array([r["hvp_seconds"] for r in rows])
    b.loglog(p, solve, "o-", label=f"Cholesky solve (∝ p^{result.numbers['solve_time_exponent']:.2f})")
    b.loglog(p, form, "^-", label=f"forming H (∝ p^{result.numbers['form_time_exponent']:.2f})")
    b.loglog(p, hvp, "s-", label="one Hessian-vector product")
    ref = solve[-1] * (p / p[-1]) ** 3
    b.loglog(p, ref, ":", color="grey", label="p³ reference")
    b.set(xlabel="parameters p", ylabel="seconds", title="Time")
    b.legend(fontsize=8)
    for ax in (a, b):
        ax.grid(alpha=0.3, which="both")
    name = "C6_newton_cost.png"
    return [result.save_figure(fig, folder, name)]
