r"""The objective of every model here, and its derivatives — over one block, and over a source.

::

    F(W, b) = L(X W + b, Y) + (λ/2) ||W||²_F          (λ = weight_decay; b is not penalised)

with L the *mean* loss over the n samples (:mod:`linearnets.losses`). With
``G = dL/dZ`` (n, k) and ``X̃ = [X, 1]`` (n, d+1)::

    ∇_W F = Xᵀ G + λ W        (d, k)
    ∇_b F = 1ᵀ G              (k,)
    ∇²F   = Σ_i (x̃_i x̃_iᵀ) ⊗ H_i + λ (I_d ⊕ 0) ⊗ I_k    ((d+1)k × (d+1)k, θ = vec([W; b]))

where ``H_i = d²L/dZ_i²`` (k, k).

:class:`Objective` is pure: the loss and the penalty, evaluated on one
:class:`~linearnets.data.source.Block` at a time, in the class-major layout ``Zᵀ = Wᵀ Xᵀ + b``
(k, m) in which PyTorch's kernels are fastest for a small k (see :mod:`linearnets.losses`).
:class:`FullBatch` sums the block terms over a source's chunks — memory is one chunk plus the
result — and all-reduces them over the ranks of a communicator, dividing by the total count:
every rank then holds F, ∇F and ∇²F of *all* rows, as one process would.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .data.source import Block, DataSource
from .data.sparse import CSR, column_moments, gt_x, matmul
from .data.targets import dense_rows
from .distributed import LOCAL
from .errors import DataError
from .losses import Loss, SquaredError
from .params import Params

__all__ = ["Objective", "FullBatch"]


@dataclass(frozen=True)
class Objective:
    """A loss and an L2 penalty ``weight_decay`` on W. Block methods take the class-major
    parameters ``Wt = Wᵀ`` (k, d), ``b`` (k,) and return means over the block's rows
    *without* the penalty (a full-batch reducer adds it once). ``fit_intercept=False`` fixes
    b = 0: its gradient, Hessian-vector product and Hessian rows are zero (the Hessian's b-block
    the identity, so Newton's step leaves b alone)."""

    loss: Loss
    weight_decay: float = 0.0
    fit_intercept: bool = True

    def penalty(self, W: Tensor) -> Tensor:
        """(λ/2) ||W||², a 0-d tensor (0 when λ = 0)."""
        return 0.5 * self.weight_decay * W.square().sum()

    @staticmethod
    def logits_t(Wt: Tensor, b: Tensor, X) -> Tensor:
        """Zᵀ = Wᵀ Xᵀ + b, shape (k, m) (X dense, or a :class:`~linearnets.data.sparse.CSR`)."""
        if isinstance(X, CSR):
            return (matmul(X, Wt.T) + b).T.contiguous()
        return torch.addmm(b[:, None], Wt, X.T)

    @staticmethod
    def relative_weights(block: Block) -> Tensor | None:
        """w̃ = w · m / Σw (mean 1 over the block) — so that the mean of w̃ℓ is the weighted mean
        Σ wℓ / Σ w; None for an unweighted block. A block whose weights are all 0 gets w̃ = 0."""
        if block.w is None:
            return None
        total = block.w.sum()
        return block.w * (block.m / total) if float(total) > 0 else torch.zeros_like(block.w)

    def value(self, Wt: Tensor, b: Tensor, block: Block) -> Tensor:
        """L over the block (mean over its rows; weighted mean when the block has weights)."""
        return self.loss_of(self.logits_t(Wt, b, block.X), block)

    def loss_of(self, Zt: Tensor, block: Block) -> Tensor:
        """L of the block's logits ``Zᵀ`` (k, m), computed already."""
        w = self.relative_weights(block)
        if w is None:
            return self.loss.value(Zt, block.T, dim=0)
        return (self.loss.per_sample(Zt, block.T, dim=0) * w).sum() / block.m

    def loss_and_logit_grad(self, Wt: Tensor, b: Tensor, block: Block) -> tuple[Tensor, Tensor, Tensor]:
        """(L, Gᵀ = (dL/dZ)ᵀ (k, m), Zᵀ (k, m)) of the block: what a minibatch step needs.
        Weights scale each row's loss and gradient (G's columns)."""
        return self.logit_grad(self.logits_t(Wt, b, block.X), block)

    def logit_grad(self, Zt: Tensor, block: Block) -> tuple[Tensor, Tensor, Tensor]:
        """(L, Gᵀ, Zᵀ) of the block's logits ``Zᵀ`` (k, m), computed already."""
        L, Gt = self.loss.value_and_grad(Zt, block.T, dim=0)
        w = self.relative_weights(block)
        if w is not None:
            Gt.mul_(w)
            L = (self.loss.per_sample(Zt, block.T, dim=0) * w).sum() / block.m
        return L, Gt, Zt

    def value_and_grad(self, Wt: Tensor, b: Tensor, block: Block) -> tuple[Tensor, Tensor, Tensor]:
        """(L, ∇_{Wᵀ} L = Gᵀ X (k, d), ∇_b L = Gᵀ 1 (k,)) of the block."""
        L, Gt, _ = self.loss_and_logit_grad(Wt, b, block)
        return L, gt_x(Gt, block.X), Gt.sum(dim=1)

    def hvp(self, Wt: Tensor, b: Tensor, VWt: Tensor, vb: Tensor, block: Block) -> tuple[Tensor, Tensor]:
        """∇²L · V of the block for a direction (V_Wᵀ (k, d), v_b (k,)), without forming ∇²L."""
        Zt = self.logits_t(Wt, b, block.X)
        ZVt = self.logits_t(VWt, vb, block.X)                 # directional change of Zᵀ (k, m)
        Mt = self.loss.hvp(Zt, block.T, ZVt, dim=0)           # (k, m)
        w = self.relative_weights(block)
        if w is not None:
            Mt.mul_(w)
        return gt_x(Mt, block.X), Mt.sum(dim=1)

    def add_hessian(self, H: Tensor, params: Params, block: Block, alpha: float = 1.0) -> None:
        """H += α ∇²L of the block; H is (d+1, k, d+1, k), the layout of ``Params.flat``
        (accumulated in place: a Hessian is too big to allocate once per block). A sparse block
        is taken in dense pieces of ~4 MiB (the Hessian, (d+1)²k² entries, is the larger)."""
        X = block.X
        if isinstance(X, CSR):
            rows = max(1, (4 << 20) // max(1, 8 * X.shape[1]))
            for s in range(0, X.shape[0], rows):
                cut = lambda t: None if t is None else t[s:s + rows]                 # noqa: E731
                T = block.T[s:s + rows] if block.T.ndim == 1 else block.T[:, s:s + rows]
                piece = Block(X[s:s + rows].to_dense(), T, cut(block.labels), cut(block.w))
                self.add_hessian(H, params, piece, alpha * piece.mass / block.mass if block.mass else 0.0)
            return
        m, k = X.shape[0], params.k
        Xt = torch.cat([X, X.new_ones(m, 1)], dim=1)                          # (m, d+1)
        w = self.relative_weights(block)
        if isinstance(self.loss, SquaredError):                              # H_i = w̃_i I/m: one Gram matrix
            gram = (Xt.T if w is None else Xt.T * w) @ Xt * (alpha / m)
            for i in range(k):
                H[:, i, :, i] += gram
            return
        Hb = self.loss.hess_blocks(torch.addmm(params.b, X, params.W), dense_rows(block.T, k, X.dtype)) * alpha
        if w is not None:
            Hb.mul_(w[:, None, None])
        for i in range(k):
            for j in range(i, k):
                part = Xt.T @ (Hb[:, i, j, None] * Xt)                        # (d+1, d+1)
                H[:, i, :, j] += part
                if j != i:
                    H[:, j, :, i] += part.T


class FullBatch:
    """F and its derivatives over every row of ``source`` (and of the other ranks of ``comm``).

    Each block term is weighted by (block mass) / (total mass) — rows, or Σ w with sample weights —
    and the sums are all-reduced, so ``value``, ``value_and_grad``, ``hessian`` and ``hvp`` are those
    of the (weighted) mean over all rows, penalty included.
    """

    def __init__(self, objective: Objective, source: DataSource, comm=LOCAL):
        self.objective, self.source, self.comm = objective, source, comm
        totals = torch.tensor([float(source.n), source.mass()], dtype=torch.float64, device=source.device)
        comm.sum_(totals)
        self.n_total, self.mass = int(totals[0]), float(totals[1])
        if self.mass <= 0:
            raise DataError(f"{source.name}: the sample weights sum to 0; give some rows a positive weight")

    d = property(lambda self: self.source.d)
    k = property(lambda self: self.source.k)
    dtype = property(lambda self: self.source.dtype)
    device = property(lambda self: self.source.device)

    def _weight(self, block: Block) -> float:
        return block.mass / self.mass

    def value(self, params: Params) -> Tensor:
        """F(W, b), a 0-d tensor."""
        Wt, b = params.W.T.contiguous(), params.b
        total = params.W.new_zeros(())
        for block in self.source.chunks():
            total += self.objective.value(Wt, b, block) * self._weight(block)
        self.comm.sum_(total)
        return total + self.objective.penalty(params.W)

    def value_and_grad(self, params: Params) -> tuple[Tensor, Tensor, Tensor]:
        """(F, ∇_W F (d, k), ∇_b F (k,))."""
        Wt, b = params.W.T.contiguous(), params.b
        F = params.W.new_zeros(())
        gWt = torch.zeros_like(Wt)                                           # (k, d)
        gb = torch.zeros_like(b)
        for block in self.source.chunks():
            w = self._weight(block)
            L, Gt, _ = self.objective.loss_and_logit_grad(Wt, b, block)
            F += L * w
            if isinstance(block.X, CSR):
                gWt.add_(gt_x(Gt, block.X), alpha=w)
            else:
                gWt.addmm_(Gt, block.X, alpha=w)                             # Gᵀ X
            gb.add_(Gt.sum(dim=1), alpha=w)
        self.comm.sum_(F, gWt, gb)
        if not self.objective.fit_intercept:
            gb.zero_()
        gW = gWt.T.contiguous()
        if self.objective.weight_decay:
            gW.add_(params.W, alpha=self.objective.weight_decay)
        return F + self.objective.penalty(params.W), gW, gb

    def hessian(self, params: Params) -> Tensor:
        """∇²F as a ((d+1)k, (d+1)k) matrix in the layout of ``Params.flat``."""
        d, k = self.d, self.k
        H = params.W.new_zeros(d + 1, k, d + 1, k)
        for block in self.source.chunks():
            self.objective.add_hessian(H, params, block, self._weight(block))
        self.comm.sum_(H)
        if not self.objective.fit_intercept:                                 # b fixed: identity block
            H[d] = 0
            H[:, :, d] = 0
            for i in range(k):
                H[d, i, d, i] = 1.0
        if self.objective.weight_decay:
            idx = torch.arange(d, device=H.device)
            for i in range(k):
                H[idx, i, idx, i] += self.objective.weight_decay
        return H.reshape((d + 1) * k, (d + 1) * k)

    def hvp(self, params: Params, VW: Tensor, Vb: Tensor) -> tuple[Tensor, Tensor]:
        """∇²F · (V_W (d, k), V_b (k,)) without forming ∇²F."""
        Wt, b, VWt = params.W.T.contiguous(), params.b, VW.T.contiguous()
        if not self.objective.fit_intercept:
            Vb = torch.zeros_like(Vb)
        HWt = torch.zeros_like(Wt)
        Hb = torch.zeros_like(b)
        for block in self.source.chunks():
            w = self._weight(block)
            hWt, hb = self.objective.hvp(Wt, b, VWt, Vb, block)
            HWt.add_(hWt, alpha=w)
            Hb.add_(hb, alpha=w)
        self.comm.sum_(HWt, Hb)
        if not self.objective.fit_intercept:
            Hb.zero_()
        HW = HWt.T.contiguous()
        if self.objective.weight_decay:
            HW.add_(VW, alpha=self.objective.weight_decay)
        return HW, Hb

    def feature_mean(self) -> Tensor:
        """x̄ (d,), the mean of the features over all rows (accumulated in float64)."""
        total = torch.zeros(self.d, dtype=torch.float64, device=self.device)
        for block in self.source.chunks():
            total += column_moments(block.X, block.w)[0]
        self.comm.sum_(total)
        return (total / self.mass).to(self.dtype)
