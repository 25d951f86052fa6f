r"""``lr="auto"``: a learning rate from the curvature of the objective, by the rule the lab verifies.

For a quadratic, gradient descent is stable iff ``lr < 2/λ_max`` of the Hessian (claim C2 measures
it to 0.1%); ``lr = 1/λ_max`` is the classic safe and fast choice. A minibatch of B rows sees the
Hessian of its own rows, noisier the smaller B: in mean square, SGD on a quadratic behaves as
gradient descent on the effective curvature

    λ_B = λ_max + (ρ − λ_max) / B,        ρ = E_i[ top eigenvalue of row i's Hessian ]

— ``λ_max`` for the full batch, ``ρ`` (the curvature of single rows, ≈ the mean ‖x̃_i‖² times the
loss's curvature) for B = 1. The rule is ``lr = (1 − momentum) / λ_B``, at most half the stable
limit. Both curvatures are measured at the starting parameters on a sample of up to 4096 rows:
``λ_max`` by power iteration with Hessian-vector products (no Hessian is formed), ``ρ`` from the
per-row Hessians of the loss with respect to the logits (k × k each). Cost: ~30 passes over the
sample — milliseconds for digits, a fraction of one epoch for Fashion-MNIST.

That rate is safe at the start, and on a quadratic it is the best one. It is not the best rate for
a whole run: on (nearly) separable data cross-entropy's curvature falls as the model grows
confident, and rates 10–1000× beyond the starting bound stay stable and lower the loss much
further; with few rows per step, gradient noise (not curvature) sets the best rate, below the
rule's. Neither can be read off the curvature at the start (BENCHMARKS.md, "lr=auto"). So
``lr="auto"`` *races* rates (:func:`race`): starting at the rule's rate η₀ it trains a copy of the
model with the run's own settings (batch size, momentum, epochs, schedule, seed) for every rate
η₀·2^j, walking up (j = 1, 2, …) and down (j = −1, −2, …) until ``PATIENCE`` rates in a row have not
lowered the objective F their runs end at, tries the two rates 2^±½ beside the best, and keeps the
rate whose run ended lowest; a rate that diverges (or that ``weight_decay`` alone makes overshoot)
loses. Up to ``RACE_ROWS`` rows the racers train and are scored on the training set itself, so the
winner's run *is* the fit (the same batches, the same steps, simulated ranks included): a grid
search at a factor of 2, in ~10–20 runs. On more rows each racer trains on ``SAMPLE_ROWS`` sampled
rows (streams: sampled in one pass) and is scored on as many others: a sample is separable long
before all the rows are, and scored on its own rows the race would pick a rate far too large. A
racer that would take more than ``RACE_STEPS`` steps (batch 1, many epochs) runs fewer epochs, its
schedule shortened to match. When no rate changes the objective the rule's rate is kept. The race assumes
the run anneals: with ``lr_schedule=None`` the estimators use ``"anneal"`` for an SGD fit with
``lr="auto"`` (constant, then a linear decay over the last 30% of epochs), so the last steps do not
leave a large rate's noise in the result.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .data.source import Block, DataSource, InMemory, concat_blocks
from .data.sparse import matmul, row_sq_norms
from .data.targets import dense_rows
from .distributed import LOCAL
from .errors import DataError, DivergenceError
from .objective import FullBatch, Objective
from .params import Params
from .solvers import Solver
from .train import TrainState, train

__all__ = ["auto_lr", "curvatures", "race", "Race"]

SAMPLE_ROWS = 4096
POWER_STEPS = 30
PATIENCE = 3             # rates in a row that do not lower the sample's F before the race turns
RACE_SPAN = (-10, 14)    # the race tries η₀·2^j for j in this range at most
RACE_ROWS = 16384        # up to this many rows the race trains and scores on every training row
RACE_STEPS = 131072      # a racer's steps at most: past it, it runs fewer epochs


def _sample(source: DataSource, seed: int, rows: int = SAMPLE_ROWS) -> InMemory:
    """Up to ``rows`` rows of the source, a seeded random subset: in memory by index (among the rows of
    positive weight); streamed in one pass, each row kept with probability ~1.25 rows/n (files sorted
    by class give every class its share, not the first file's), then cut to ``rows``."""
    if source.n <= rows and isinstance(source, InMemory):
        return source
    g = torch.Generator().manual_seed(seed)
    if isinstance(source, InMemory):                  # rows of weight 0 add nothing to F: not drawn
        live = None if source.w is None else (source.w > 0).nonzero().flatten().cpu()
        if live is None or live.numel() == source.n:
            return source.rows(torch.randperm(source.n, generator=g)[:rows].sort().values)
        return source.rows(live[torch.randperm(live.numel(), generator=g)[:rows]].sort().values)
    keep = min(1.0, 1.25 * rows / max(source.n, 1))
    picked = []
    for block in source.chunks():
        part = InMemory(block.X, block.T, block.labels, source.targets, w=block.w)
        chosen = (torch.rand(block.m, generator=g) < keep).nonzero().flatten()
        if chosen.numel():
            r = part.rows(chosen)
            picked.append(Block(r.X, r.T, r.labels, r.w))
    if not picked:
        raise DataError(f"{source.name}: no rows to sample")
    b = concat_blocks(picked)
    sample = InMemory(b.X, b.T, b.labels, source.targets, w=b.w)
    return _sample(sample, seed, rows) if sample.n > rows else sample


def curvatures(objective: Objective, source: DataSource, params: Params, seed: int = 0) -> tuple[float, float]:
    """(λ_max of ∇²F, ρ = mean top curvature of one row's term) at ``params``, on a sample."""
    sample = _sample(source, seed)
    if sample.sparse:       # the data term's Hessian lives on the sample's columns (λI elsewhere): iterate there
        cols, Xc = sample.X.used_columns()
        sample = InMemory(Xc, sample.T, sample.labels, sample.targets, w=sample.w)
        params = Params(params.W.index_select(0, cols), params.b)
    fb = FullBatch(objective, sample)
    g = torch.Generator().manual_seed(seed)
    VW = torch.randn(params.W.shape, generator=g, dtype=torch.float64).to(params.W)
    Vb = torch.randn(params.b.shape, generator=g, dtype=torch.float64).to(params.b)
    lam = 0.0
    for _ in range(POWER_STEPS):                                  # power iteration on ∇²F (PSD for CE, squared)
        norm = float(torch.sqrt(VW.square().sum() + Vb.square().sum()))
        if not norm or not math.isfinite(norm):
            break
        VW, Vb = VW / norm, Vb / norm
        HW, Hb = fb.hvp(params, VW, Vb)
        lam = float((HW * VW).sum() + (Hb * Vb).sum())           # Rayleigh quotient
        VW, Vb = HW, Hb
    # ρ: the top eigenvalue of row i's term x̃_i x̃_iᵀ ⊗ H_i is ‖x̃_i‖² · λ_max(H_i) (H_i = d²ℓ_i/dz_i²)
    X = sample.X
    k = sample.k
    sq = row_sq_norms(X) + 1.0                                    # ‖[x, 1]‖²
    if k <= 64:
        Z = matmul(X, params.W) + params.b
        H = objective.loss.hess_blocks(Z, dense_rows(sample.T, k, X.dtype)) * X.shape[0]   # per row, no 1/m
        top = torch.linalg.eigvalsh(H.double()).abs().amax(dim=1)
    else:                                                         # many classes: the softmax bound ½
        top = torch.full_like(sq, 1.0 if not objective.loss.classification else 0.5)
    w = sample.w
    rows = sq * top
    rho = float(rows.mean() if w is None else (w.double() * rows).sum() / w.double().sum())
    return max(lam, 0.0) + objective.weight_decay * 0.0, rho + objective.weight_decay


def auto_lr(objective: Objective, source: DataSource, params: Params, *, batch_size: int, momentum: float = 0.0,
            seed: int = 0, comm=LOCAL) -> float:
    """The learning rate ``(1 − momentum) / λ_B`` for minibatches of ``batch_size`` rows (see above).

    ``comm``: in a data-parallel run each rank measures its own share's sample; the ranks take the
    mean of (λ_max, ρ) and rank 0's rate, so every replica steps with the same one."""
    lam, rho = curvatures(objective, source, params, seed)
    if comm.world_size > 1:
        both = torch.tensor([lam, rho], dtype=torch.float64, device=comm.device)
        comm.sum_(both)
        lam, rho = (float(v) / comm.world_size for v in both)
    B = min(int(batch_size), max(source.n, 1))
    lam_B = lam + max(rho - lam, 0.0) / B
    lr = (1.0 - momentum) / lam_B if lam_B > 0 and math.isfinite(lam_B) else 0.1
    return float(comm.broadcast_object(lr)) if comm.world_size > 1 else lr


@dataclass
class Race:
    """What :func:`race` did: the winning ``lr``, the rule's ``start`` (η₀), the ``rows`` and ``epochs``
    each racer trained for, whether it was scored on ``held_out`` rows, and every rate ``tried`` with
    the objective F its run reached (∞: diverged). Nothing tried: no rows to race on (weights 0)."""

    lr: float
    start: float
    rows: int
    held_out: bool = False
    epochs: int = 0
    tried: list[tuple[float, float]] = field(default_factory=list)


def race(objective: Objective, source: DataSource, params: Params, solver_for: Callable[[float, int], Solver], *,
         start: float, epochs: int, batch_size: int, seed: int = 0) -> Race:
    """The rate among ``start``·2^j whose run (``solver_for(lr, …)`` from ``params`` for ``epochs``
    epochs) ends with the lowest objective F on ``source`` or on held-out rows of it (module docstring).

    ``solver_for(lr, epochs)``: a fresh solver with the run's settings, learning rate ``lr`` and
    ``epochs`` (the schedule's length: the run's, or fewer when a racer would take more than
    ``RACE_STEPS`` steps)."""
    held_out = source.n > RACE_ROWS
    rows = SAMPLE_ROWS if held_out else source.n                  # each racer trains on this many rows
    per_epoch = -(-rows // max(batch_size, 1))
    race_epochs = epochs if epochs * per_epoch <= RACE_STEPS else max(1, RACE_STEPS // per_epoch)
    sample = _sample(source, seed, 2 * rows) if held_out else source   # in full: the run's own batches
    start_params = params
    if isinstance(sample, InMemory) and sample.sparse:    # only the sample's columns move; the rest stay put
        cols, Xc = sample.X.used_columns()
        sample = InMemory(Xc, sample.T, sample.labels, sample.targets, w=sample.w)
        start_params = Params(params.W.index_select(0, cols), params.b)
    scored = sample
    if held_out:                                          # train on one half, score on the other
        order = torch.randperm(sample.n, generator=torch.Generator().manual_seed(seed + 1))
        cut = min(rows, (sample.n + 1) // 2)              # (fewer rows of positive weight than 2 × rows)
        sample, scored = sample.rows(order[:cut]), sample.rows(order[cut:])
    result = Race(lr=start, start=start, rows=sample.n, held_out=held_out, epochs=race_epochs)
    if scored.mass() <= 0 or (held_out and sample.mass() <= 0):    # weights all 0 on a side: nothing to race on
        return result
    full = FullBatch(objective, scored)
    scores: dict[float, float] = {}

    def score(j: float) -> float:
        lr = start * 2.0 ** j
        if lr * objective.weight_decay >= 2:                     # the penalty alone overshoots: not run
            scores[j] = math.inf
            result.tried.append((lr, math.inf))
            return math.inf
        state = TrainState(start_params.clone())
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                train(sample, objective, solver_for(lr, race_epochs), state, epochs=race_epochs,
                      warn_unconverged=False)
            value = float(full.value(state.params))
        except DivergenceError:
            value = math.inf
        value = value if math.isfinite(value) else math.inf
        scores[j] = value
        result.tried.append((lr, value))
        return value

    best = 0
    score(0)
    for direction in (1, -1):
        j, misses = 0, 0
        while misses < PATIENCE and RACE_SPAN[0] <= j + direction <= RACE_SPAN[1]:
            j += direction
            if score(j) < scores[best]:
                best, misses = j, 0
            else:
                misses += 1
    ends = [v for v in scores.values() if math.isfinite(v)]
    if not ends or max(ends) - min(ends) <= 1e-12 * abs(min(ends)):    # all diverged, or no rate mattered:
        best = 0                                                         # the rule's rate
    else:                                                        # then the half steps on either side
        for j in (best - 0.5, best + 0.5):
            if score(j) < scores[best]:
                best = j
    result.lr = start * 2.0 ** best
    return result
