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
"""

from __future__ import annotations

import math

import torch

from .data.source import DataSource, InMemory, concat_blocks
from .data.sparse import matmul, row_sq_norms
from .data.targets import dense_rows
from .distributed import LOCAL
from .objective import FullBatch, Objective
from .params import Params

__all__ = ["auto_lr", "curvatures"]

SAMPLE_ROWS = 4096
POWER_STEPS = 30


def _sample(source: DataSource, seed: int) -> InMemory:
    """Up to SAMPLE_ROWS rows of the source: a seeded random subset in memory, else the first chunks."""
    if isinstance(source, InMemory):
        if source.n <= SAMPLE_ROWS:
            return source
        pick = torch.randperm(source.n, generator=torch.Generator().manual_seed(seed))[:SAMPLE_ROWS]
        return source.rows(pick.sort().values)
    blocks, rows = [], 0
    for block in source.chunks():
        blocks.append(block)
        rows += block.m
        if rows >= SAMPLE_ROWS:
            break
    b = concat_blocks(blocks)
    return InMemory(b.X, b.T, b.labels, source.targets, w=b.w)


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
