r"""The training problem: data, a loss and an L2 penalty on W — and its derivatives.

The objective of every model here::

    F(W, b) = L(X W + b, Y) + (λ/2) ||W||²_F          (λ = weight_decay; b is not penalised)

with L the *mean* loss over the n samples (:mod:`linearnets.losses`). With
``G = dL/dZ`` (n, k) and ``X̃ = [X, 1]`` (n, d+1)::

    ∇_W F = Xᵀ G + λ W        (d, k)
    ∇_b F = 1ᵀ G              (k,)
    ∇²F   = Σ_i (x̃_i x̃_iᵀ) ⊗ H_i + λ (I_d ⊕ 0) ⊗ I_k    ((d+1)k × (d+1)k, θ = vec([W; b]))

where ``H_i = d²L/dZ_i²`` (k, k). Every full-batch quantity is accumulated over
chunks of rows, so memory is bounded by a chunk plus the result (streamed data plugs
into the same :meth:`Problem.chunks`).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property

import torch
from torch import Tensor

from .losses import Loss, SquaredError
from .params import Params

__all__ = ["Problem"]


class Problem:
    """In-memory training data ``X`` (n, d), targets ``Y`` (n, k), a loss and ``weight_decay``.

    ``Y`` holds regression targets, or probability rows for classification (one-hot
    for hard labels). ``chunk_rows`` bounds the rows touched at once by full-batch work;
    by default a chunk is about 4 MiB, so that the forward and the backward product of a
    chunk read it from cache: a full-batch gradient reads X from memory once.
    """

    CHUNK_BYTES = 4 << 20

    def __init__(self, X: Tensor, Y: Tensor, loss: Loss, weight_decay: float = 0.0,
                 *, chunk_rows: int | None = None):
        if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
            raise ValueError(f"X (n, d) and Y (n, k) expected, got {tuple(X.shape)} and {tuple(Y.shape)}")
        self.X, self.Y, self.loss = X, Y, loss
        self.weight_decay = float(weight_decay)
        if chunk_rows is None:
            chunk_rows = max(256, self.CHUNK_BYTES // max(1, X.shape[1] * X.element_size()))
        self.chunk_rows = int(chunk_rows)

    # sizes -------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def d(self) -> int:
        return self.X.shape[1]

    @property
    def k(self) -> int:
        return self.Y.shape[1]

    @property
    def dtype(self) -> torch.dtype:
        return self.X.dtype

    @property
    def device(self) -> torch.device:
        return self.X.device

    def chunks(self) -> Iterator[tuple[Tensor, Tensor]]:
        """Consecutive row blocks ``(X_c, Y_c)`` covering the data once, in order."""
        for s in range(0, self.n, self.chunk_rows):
            yield self.X[s:s + self.chunk_rows], self.Y[s:s + self.chunk_rows]

    @cached_property
    def targets(self) -> Tensor:
        """The targets in the class-major layout the fast paths use: integer labels (n,) when
        every row of Y is one-hot (the losses then skip the dense rows), else Yᵀ (k, n)."""
        Y = self.Y
        if self.loss.classification:
            labels = Y.argmax(dim=1)
            if bool((Y.gather(1, labels[:, None]) == 1).all() and (Y.sum(dim=1) == 1).all()):
                return labels
        return Y.T.contiguous()

    @cached_property
    def labels(self) -> Tensor:
        """argmax of each target row (n,): the class counted as right for accuracy."""
        return self.Y.argmax(dim=1)

    def target_columns(self, index: Tensor) -> Tensor:
        """The class-major targets of the samples ``index`` (labels (m,) or Yᵀ columns (k, m))."""
        T = self.targets
        return T.index_select(0 if T.ndim == 1 else 1, index)

    def class_major_chunks(self) -> Iterator[tuple[Tensor, Tensor]]:
        """Row blocks ``(X_c (m, d), T_c)`` with the targets as in :attr:`targets`."""
        T = self.targets
        for s in range(0, self.n, self.chunk_rows):
            e = s + self.chunk_rows
            yield self.X[s:e], (T[s:e] if T.ndim == 1 else T[:, s:e])

    def penalty(self, params: Params) -> Tensor:
        return 0.5 * self.weight_decay * params.W.square().sum()

    # full-batch objective ----------------------------------------------------------
    # Computed in the class-major layout Zᵀ = Wᵀ Xᵀ + b (k, m) per chunk: the same sums, with
    # PyTorch's fast kernels for a small k (see losses); ∇_W F is accumulated as Gᵀ X (k, d).
    def value(self, params: Params) -> Tensor:
        """F(W, b), a 0-d tensor."""
        Wt, b = params.W.T.contiguous(), params.b[:, None]
        total = params.W.new_zeros(())
        for Xc, Tc in self.class_major_chunks():
            total += self.loss.value(torch.addmm(b, Wt, Xc.T), Tc, dim=0) * (Xc.shape[0] / self.n)
        return total + self.penalty(params)

    def value_and_accuracy(self, params: Params) -> tuple[Tensor, float]:
        """(F, fraction of samples whose largest logit is their label's), in one pass."""
        Wt, b = params.W.T.contiguous(), params.b[:, None]
        total = params.W.new_zeros(())
        hits = 0
        labels = self.labels
        for s, (Xc, Tc) in zip(range(0, self.n, self.chunk_rows), self.class_major_chunks()):
            Zt = torch.addmm(b, Wt, Xc.T)                                   # (k, m)
            total += self.loss.value(Zt, Tc, dim=0) * (Xc.shape[0] / self.n)
            lab = labels[s:s + Xc.shape[0]][None, :]
            hits += int((Zt.gather(0, lab) >= Zt.amax(dim=0, keepdim=True)).sum())
        return total + self.penalty(params), hits / self.n

    def value_and_grad(self, params: Params) -> tuple[Tensor, Tensor, Tensor]:
        """(F, ∇_W F (d, k), ∇_b F (k,))."""
        Wt, b = params.W.T.contiguous(), params.b[:, None]
        F = params.W.new_zeros(())
        gWt = torch.zeros_like(Wt)                            # (k, d)
        gb = torch.zeros_like(params.b)
        for Xc, Tc in self.class_major_chunks():
            w = Xc.shape[0] / self.n                          # chunk mean → global mean
            Lc, Gt = self.loss.value_and_grad(torch.addmm(b, Wt, Xc.T), Tc, dim=0)   # Gᵀ (k, m)
            F += Lc * w
            gWt.addmm_(Gt, Xc, alpha=w)                       # Gᵀ X
            gb.add_(Gt.sum(dim=1), alpha=w)
        gW = gWt.T.contiguous()
        if self.weight_decay:
            gW.add_(params.W, alpha=self.weight_decay)
        return F + self.penalty(params), gW, gb

    def hessian(self, params: Params) -> Tensor:
        """∇²F as a ((d+1)k, (d+1)k) matrix in the layout of ``Params.flat``."""
        d, k = self.d, self.k
        H = params.W.new_zeros(d + 1, k, d + 1, k)
        squared = isinstance(self.loss, SquaredError)
        for Xc, Yc in self.chunks():
            w = Xc.shape[0] / self.n
            Xt = torch.cat([Xc, Xc.new_ones(Xc.shape[0], 1)], dim=1)      # (n_c, d+1)
            if squared:                                    # H_i = I/n: one Gram matrix
                gram = Xt.T @ Xt * (w / Xc.shape[0])
                for i in range(k):
                    H[:, i, :, i] += gram
                continue
            Hb = self.loss.hess_blocks(torch.addmm(params.b, Xc, params.W), Yc) * w  # (n_c, k, k)
            for i in range(k):
                for j in range(i, k):
                    block = Xt.T @ (Hb[:, i, j, None] * Xt)                   # (d+1, d+1)
                    H[:, i, :, j] += block
                    if j != i:
                        H[:, j, :, i] += block.T
        if self.weight_decay:
            idx = torch.arange(d, device=H.device)
            for i in range(k):
                H[idx, i, idx, i] += self.weight_decay
        return H.reshape((d + 1) * k, (d + 1) * k)

    def hvp(self, params: Params, VW: Tensor, Vb: Tensor) -> tuple[Tensor, Tensor]:
        """Hessian-vector product ∇²F · (V_W, V_b) without forming ∇²F (class-major per chunk)."""
        Wt, b = params.W.T.contiguous(), params.b[:, None]
        VWt, vb = VW.T.contiguous(), Vb[:, None]
        HWt = torch.zeros_like(Wt)
        Hb = torch.zeros_like(params.b)
        for Xc, Tc in self.class_major_chunks():
            w = Xc.shape[0] / self.n
            Zt = torch.addmm(b, Wt, Xc.T)                    # (k, m)
            ZVt = torch.addmm(vb, VWt, Xc.T)                 # directional change of Zᵀ (k, m)
            Mt = self.loss.hvp(Zt, Tc, ZVt, dim=0)           # (k, m)
            HWt.addmm_(Mt, Xc, alpha=w)
            Hb.add_(Mt.sum(dim=1), alpha=w)
        HW = HWt.T.contiguous()
        if self.weight_decay:
            HW.add_(VW, alpha=self.weight_decay)
        return HW, Hb
