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

    def penalty(self, params: Params) -> Tensor:
        return 0.5 * self.weight_decay * params.W.square().sum()

    # full-batch objective ----------------------------------------------------------
    def value(self, params: Params) -> Tensor:
        """F(W, b), a 0-d tensor."""
        total = params.W.new_zeros(())
        for Xc, Yc in self.chunks():
            total += self.loss.value(torch.addmm(params.b, Xc, params.W), Yc) * (Xc.shape[0] / self.n)
        return total + self.penalty(params)

    def value_and_grad(self, params: Params) -> tuple[Tensor, Tensor, Tensor]:
        """(F, ∇_W F (d, k), ∇_b F (k,))."""
        F = params.W.new_zeros(())
        gW = torch.zeros_like(params.W)
        gb = torch.zeros_like(params.b)
        for Xc, Yc in self.chunks():
            w = Xc.shape[0] / self.n                          # chunk mean → global mean
            Lc, Gc = self.loss.value_and_grad(torch.addmm(params.b, Xc, params.W), Yc)
            F += Lc * w
            gW.addmm_(Xc.T, Gc, alpha=w)                      # Xᵀ G
            gb += Gc.sum(dim=0) * w
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
        """Hessian-vector product ∇²F · (V_W, V_b) without forming ∇²F."""
        HW = torch.zeros_like(params.W)
        Hb = torch.zeros_like(params.b)
        for Xc, Yc in self.chunks():
            w = Xc.shape[0] / self.n
            Z = torch.addmm(params.b, Xc, params.W)
            ZV = torch.addmm(Vb, Xc, VW)                     # directional change of Z (n_c, k)
            M = self.loss.hvp(Z, Yc, ZV)                     # (n_c, k)
            HW.addmm_(Xc.T, M, alpha=w)
            Hb += M.sum(dim=0) * w
        if self.weight_decay:
            HW.add_(VW, alpha=self.weight_decay)
        return HW, Hb
