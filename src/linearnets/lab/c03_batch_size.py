"""C3 — batch size too small wastes parallel hardware; too large wastes memory."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from .._io import quiet_native_stderr
from ..autolr import auto_lr
from ..params import Params
from ..plots import plt
from ..train import Callback
from .base import TIME, Result, describe, interleaved_times, robust, verdict_from, within
from .tracking import problem_from, run_solver, subset

ID = "C3"
TITLE = "Batch size: throughput, memory, and progress per epoch and per second"
CLAIM_ZH = ("在选取批量大小上，不能太小，太小不适合并行无法最大利用计算资源；"
            "也不适合太大，太大内存消耗增加浪费资源。")
CLAIM_EN = ("The batch size must be neither too small — small batches cannot use parallel hardware fully — "
            "nor too large — large batches consume more memory and waste resources.")
RUN = ("Softmax regression trained by the library's minibatch SGD (fresh permutation each epoch) on the "
       "training split (quick: its first 4 096 rows), for batch sizes from 1 to n, all at one learning rate (lr = \"curvature\" — the curvature rule — for batch 1, "
       "the smallest and safe for every batch). For each: samples/s and seconds per step (one epoch over "
       "the same m rows per batch size, the batch sizes interleaved, repeated; the minimum over repeats "
       "is the estimate, the median shows the load's effect), peak memory allocated during SGD steps "
       "(PyTorch's profiler over 32 steps: the running sum of allocations and frees), the training loss "
       "after a fixed number of epochs (equal samples), and after a fixed wall-clock budget (shown, not "
       "judged: it depends on the machine).")
CRITERION = ("supported when batch size 1 processes ≤ 1/5 of the samples/s of the fastest batch size "
             "(small batches waste the hardware: one row per step cannot fill the vector units — the "
             "gap is 10–100× on any CPU or GPU, so 5× leaves a wide margin) and the peak memory at batch "
             "n is ≥ 10× that at batch 1 (large batches cost memory: the activations grow with B). Judged "
             "on time (throughput, min of interleaved repeats: inconclusive if the estimates from "
             "minimum and median times fall on both sides of 1/5) and bytes (exact)")
USES_DATASET = True


def peak_step_memory(problem, batch_size: int, seed: int, steps: int = 32) -> int:
    """Peak bytes held by allocations made during ``steps`` SGD steps (an epoch over the first
    ``steps × batch_size`` rows). CPU: PyTorch's profiler; CUDA: the caching allocator's peak."""
    problem = subset(problem, steps * batch_size)

    if problem.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        run_solver(problem, "sgd", epochs=1, lr=0.1, batch_size=batch_size, seed=seed)
        return int(torch.cuda.max_memory_allocated() - base)
    with quiet_native_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run_solver(problem, "sgd", epochs=1, lr=0.1, batch_size=batch_size, seed=seed)
    events = sorted((e for e in prof.events() if e.self_cpu_memory_usage),
                    key=lambda e: e.time_range.start)
    current = peak = 0
    for e in events:
        current += e.self_cpu_memory_usage
        peak = max(peak, current)
    return int(peak)


def run(config, deps=None) -> Result:
    Xtr, ytr, *_ = config.classification
    problem = problem_from(Xtr, ytr, dtype=torch.float32, k=config.k)
    if config.quick:                                             # a bounded amount of work on any dataset
        problem = subset(problem, 4096)
    n = problem.n_total
    sizes = [1, 4, 16, 64, 256, n] if config.quick else [1, 2, 8, 32, 128, 512, 2048, n]
    sizes = sorted(set(min(b, n) for b in sizes))
    lr = auto_lr(problem.objective, problem.source, Params.zeros(problem.d, problem.k, dtype=problem.dtype),
                 batch_size=1, seed=config.seed)
    epochs_fixed = config.size(5, 10)
    budget = config.size(0.25, 2.0)
    repeats = config.size(5, 7)
    m = min(n, config.size(2048, 8192))                          # rows timed per batch size
    timed = subset(problem, m)

    def one_epoch(B):
        return lambda: run_solver(timed, "sgd", epochs=max(1, -(-32 * B // m)), lr=lr, batch_size=min(B, m),
                                  seed=config.seed)
    times = interleaved_times({B: one_epoch(B) for B in sizes}, repeats=repeats)
    fastest, typical = robust(times)
    rows = []
    for B in sizes:
        Bm, epochs_t = min(B, m), max(1, -(-32 * B // m))
        steps = epochs_t * -(-m // Bm)
        samples = epochs_t * m
        params, _, _ = run_solver(problem, "sgd", epochs=epochs_fixed, lr=lr, batch_size=B, seed=config.seed)
        loss_epochs = float(problem.value(params))
        t0 = time.perf_counter()                                 # fixed wall-clock budget: as many epochs as fit

        class Budget(Callback):
            def on_epoch(self, state, record):
                return time.perf_counter() - t0 >= budget
        params, hist_b, _ = run_solver(problem, "sgd", epochs=100000, lr=lr, batch_size=B,
                                       seed=config.seed, callbacks=[Budget()])
        rows.append({"batch_size": B, "samples_per_s": samples / fastest[B],
                     "samples_per_s_median": samples / typical[B], "seconds_per_step": fastest[B] / steps,
                     "seconds_per_epoch": fastest[B] * n / samples, "peak_bytes": peak_step_memory(problem, B, config.seed),
                     "loss_after_epochs": loss_epochs, "loss_after_budget": float(problem.value(params)),
                     "epochs_in_budget": len(hist_b)})
    sps = [r["samples_per_s"] for r in rows]
    sps_med = [r["samples_per_s_median"] for r in rows]
    small_ratio = rows[0]["samples_per_s"] / max(sps)
    small_ratio_med = rows[0]["samples_per_s_median"] / max(sps_med)
    mem_ratio = rows[-1]["peak_bytes"] / max(rows[0]["peak_bytes"], 1)
    best_budget = min(rows, key=lambda r: r["loss_after_budget"])["batch_size"]
    best_epochs = min(rows, key=lambda r: r["loss_after_epochs"])["batch_size"]
    checks = {f"batch 1 runs at {small_ratio:.1%} of the best samples/s ({small_ratio_med:.1%} from median "
              f"times; ≤ 20%)": within([small_ratio, small_ratio_med], high=0.2),
              f"peak memory at batch n is {mem_ratio:.0f}× that at batch 1 (≥ 10×)": mem_ratio >= 10}
    numbers = {"n": n, "rows_timed": m, "lr": lr, "rows": rows, "batch1_throughput_fraction": small_ratio,
               "memory_ratio_n_vs_1": mem_ratio, "fastest_batch_size": rows[int(np.argmax(sps))]["batch_size"],
               "best_batch_after_fixed_epochs": best_epochs, "best_batch_after_time_budget": best_budget}
    return Result(ID, TITLE, CLAIM_ZH, CLAIM_EN, RUN,
                  settings={"dataset": config.dataset, "lr": lr, "batch_sizes": sizes, "rows_timed": m,
                            "fixed_epochs": epochs_fixed, "time_budget_s": budget, "repeats": repeats,
                            "torch_threads": torch.get_num_threads()},
                  seed=config.seed, numbers=numbers, verdict=verdict_from(checks), criterion=CRITERION,
                  reason=describe(checks) + f"; lowest loss after {budget:g} s at batch {best_budget}, "
                                            f"after {epochs_fixed} epochs at batch {best_epochs}",
                  judged_on=TIME, repeats=repeats,
                  spread={"batch1_throughput_fraction": [small_ratio, small_ratio_med]})


def plot(result, folder) -> list[str]:
    rows = result.numbers["rows"]
    B = [r["batch_size"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), layout="constrained")
    a, b, c = axes
    a.loglog(B, [r["samples_per_s"] for r in rows], "o-", label="samples / s")
    a2 = a.twinx()
    a2.loglog(B, [r["seconds_per_step"] * 1e3 for r in rows], "s--", color="C1", label="ms / step")
    a.set(xlabel="batch size", ylabel="samples / s", title="Throughput")
    a2.set_ylabel("ms per step", color="C1")
    a.legend(loc="upper left", fontsize=8)
    a2.legend(loc="lower right", fontsize=8)
    b.loglog(B, [r["peak_bytes"] / 1024 for r in rows], "o-", color="C2")
    b.set(xlabel="batch size", ylabel="KiB", title="Peak memory allocated by SGD steps")
    c.semilogx(B, [r["loss_after_epochs"] for r in rows], "o-",
               label=f"after {result.settings['fixed_epochs']} epochs")
    c.semilogx(B, [r["loss_after_budget"] for r in rows], "s-",
               label=f"after {result.settings['time_budget_s']:g} s")
    c.set(xlabel="batch size", ylabel="training loss", title="Progress: per epoch vs per second")
    c.legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    name = "C3_batch_size.png"
    return [result.save_figure(fig, folder, name)]
