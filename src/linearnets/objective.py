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
from .data.targets import dense_rows
from .distributed import LOCAL
from .losses import Loss, SquaredError
from .params import Params

__all__ = ["Objective", "FullBatch"]


@dataclass(frozen=True)
class Objective:
    """A loss and an L2 penalty ``weight_decay`` on W. Block methods take the class-major
    parameters ``Wt = Wᵀ`` (k, d), ``b`` (k,) and return means over the block's rows
    *without* the penalty (a full-batch reducer adds it once)."""

    loss: Loss
    weight_decay: float = 0.0

    def penalty(self, W: Tensor) -> Tensor:
        """(λ/2) ||W||², a 0-d tensor (0 when λ = 0)."""
        return 0.5 * self.weight_decay * W.square().sum()

    @staticmethod
    def logits_t(Wt: Tensor, b: Tensor, X: Tensor) -> Tensor:
        """Zᵀ = Wᵀ Xᵀ + b, shape (k, m)."""
        return torch.addmm(b[:, None], Wt, X.T)

    def value(self, Wt: Tensor, b: Tensor, block: Block) -> Tensor:
        """L over the block (mean over its rows)."""
        return self.loss.value(self.logits_t(Wt, b, block.X), block.T, dim=0)

    def loss_and_logit_grad(self, Wt: Tensor, b: Tensor, block: Block) -> tuple[Tensor, Tensor, Tensor]:
        """(L, Gᵀ = (dL/dZ)ᵀ (k, m), Zᵀ (k, m)) of the block: what a minibatch step needs."""
        Zt = self.logits_t(Wt, b, block.X)
        L, Gt = self.loss.value_and_grad(Zt, block.T, dim=0)
        return L, Gt, Zt

    def value_and_grad(self, Wt: Tensor, b: Tensor, block: Block) -> tuple[Tensor, Tensor, Tensor]:
        """(L, ∇_{Wᵀ} L = Gᵀ X (k, d), ∇_b L = Gᵀ 1 (k,)) of the block."""
        L, Gt, _ = self.loss_and_logit_grad(Wt, b, block)
        return L, Gt @ block.X, Gt.sum(dim=1)

    def hvp(self, Wt: Tensor, b: Tensor, VWt: Tensor, vb: Tensor, block: Block) -> tuple[Tensor, Tensor]:
        """∇²L · V of the block for a direction (V_Wᵀ (k, d), v_b (k,)), without forming ∇²L."""
        Zt = self.logits_t(Wt, b, block.X)
        ZVt = self.logits_t(VWt, vb, block.X)                 # directional change of Zᵀ (k, m)
        Mt = self.loss.hvp(Zt, block.T, ZVt, dim=0)           # (k, m)
        return Mt @ block.X, Mt.sum(dim=1)

    def add_hessian(self, H: Tensor, params: Params, block: Block, alpha: float = 1.0) -> None:
        """H += α ∇²L of the block; H is (d+1, k, d+1, k), the layout of ``Params.flat``
        (accumulated in place: a Hessian is too big to allocate once per block)."""
        X = block.X
        m, k = X.shape[0], params.k
        Xt = torch.cat([X, X.new_ones(m, 1)], dim=1)                          # (m, d+1)
        if isinstance(self.loss, SquaredError):                              # H_i = I/m: one Gram matrix
            gram = Xt.T @ Xt * (alpha / m)
            for i in range(k):
                H[:, i, :, i] += gram
            return
        Hb = self.loss.hess_blocks(torch.addmm(params.b, X, params.W), dense_rows(block.T, k, X.dtype)) * alpha
        for i in range(k):
            for j in range(i, k):
                part = Xt.T @ (Hb[:, i, j, None] * Xt)                        # (d+1, d+1)
                H[:, i, :, j] += part
                if j != i:
                    H[:, j, :, i] += part.T


class FullBatch:
    """F and its derivatives over every row of ``source`` (and of the other ranks of ``comm``).

    Each block term is weighted by (block rows) / (total rows) and the sums are all-reduced,
    so ``value``, ``value_and_grad``, ``hessian`` and ``hvp`` are those of the mean over all rows,
    penalty included.
    """

    def __init__(self, objective: Objective, source: DataSource, comm=LOCAL):
        self.objective, self.source, self.comm = objective, source, comm
        count = torch.tensor([float(source.n)], dtype=torch.float64, device=source.device)
        comm.sum_(count)
        self.n_total = int(count)

    d = property(lambda self: self.source.d)
    k = property(lambda self: self.source.k)
    dtype = property(lambda self: self.source.dtype)
    device = property(lambda self: self.source.device)

    def _weight(self, block: Block) -> float:
        return block.m / self.n_total

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
            gWt.addmm_(Gt, block.X, alpha=w)                                 # Gᵀ X
            gb.add_(Gt.sum(dim=1), alpha=w)
        self.comm.sum_(F, gWt, gb)
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
        if self.objective.weight_decay:
            idx = torch.arange(d, device=H.device)
            for i in range(k):
                H[idx, i, idx, i] += self.objective.weight_decay
        return H.reshape((d + 1) * k, (d + 1) * k)

    def hvp(self, params: Params, VW: Tensor, Vb: Tensor) -> tuple[Tensor, Tensor]:
        """∇²F · (V_W (d, k), V_b (k,)) without forming ∇²F."""
        Wt, b, VWt = params.W.T.contiguous(), params.b, VW.T.contiguous()
        HWt = torch.zeros_like(Wt)
        Hb = torch.zeros_like(b)
        for block in self.source.chunks():
            w = self._weight(block)
            hWt, hb = self.objective.hvp(Wt, b, VWt, Vb, block)
            HWt.add_(hWt, alpha=w)
            Hb.add_(hb, alpha=w)
        self.comm.sum_(HWt, Hb)
        HW = HWt.T.contiguous()
        if self.objective.weight_decay:
            HW.add_(VW, alpha=self.objective.weight_decay)
        return HW, Hb

    def feature_mean(self) -> Tensor:
        """x̄ (d,), the mean of the features over all rows (accumulated in float64)."""
        total = torch.zeros(self.d, dtype=torch.float64, device=self.device)
        for block in self.source.chunks():
            total += block.X.to(torch.float64).sum(dim=0)
        self.comm.sum_(total)
        return (total / self.n_total).to(self.dtype)
