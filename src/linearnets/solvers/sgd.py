r"""Minibatch stochastic gradient descent (``sgd``) and full-batch gradient descent (``gd``).

Each epoch walks a fresh permutation of the samples in batches B_t (the training loop,
:func:`linearnets.train.train`, draws them); one SGD step is::

    G_t = dL_B/dZ at (W_t, b_t),   g_W = X_Bᵀ G_t + λ W_t,   g_b = 1ᵀ G_t
    v ← μ v + g      (μ = momentum; v = g when μ = 0)
    θ ← θ - η_e v    (η_e = the scheduled learning rate of epoch e)

``gd`` is the same update with B = all samples, one step per epoch. No autograd: the
gradient is the loss's analytic ``G`` pushed through the layer.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..params import ClassMajor, Params
from .base import DivergenceGuard, EpochStats, Solver, grad_max, learning_rate


class SGD(Solver):
    """Minibatch SGD: the update rule and its momentum buffer, in the class-major layout
    (``Wᵀ`` (k, d); see :class:`~linearnets.params.ClassMajor`)."""

    name = "sgd"
    minibatch = True
    uses_lr = True

    def init(self, d, k, dtype, device) -> None:
        mu = self.config.momentum
        self.vWt = torch.zeros(k, d, dtype=dtype, device=device) if mu else None     # (k, d)
        self.vb = torch.zeros(k, dtype=dtype, device=device) if mu else None

    def state_dict(self) -> dict:
        return {} if self.vWt is None else {"vW": self.vWt, "vb": self.vb}

    def load_state_dict(self, state: dict) -> None:
        if self.vWt is not None and "vW" in state:
            self.vWt.copy_(state["vW"])
            self.vb.copy_(state["vb"])

    def update(self, cur: ClassMajor, out: ClassMajor, lr: float, weight_decay: float, Gt: Tensor | None,
               X: Tensor | None, grad: tuple[Tensor, Tensor] | None = None, intercept: bool = True) -> None:
        """``out`` ← one step from ``cur``. The data gradient is ``(Gᵀ X, Gᵀ 1)`` from the batch's
        ``Gt`` (k, m) and ``X`` (m, d), or ``grad = (g_Wᵀ, g_b)`` when already reduced over ranks
        (it may be overwritten). ``out`` and ``cur`` are distinct buffers (the loop alternates them).
        ``intercept=False``: b stays where it is (0)."""
        mu = self.config.momentum
        if grad is None and not mu:                              # (1 - ηλ) Wᵀ - η Gᵀ X, fused
            torch.addmm(cur.Wt, Gt, X, beta=1.0 - lr * weight_decay, alpha=-lr, out=out.Wt)
            if intercept:
                torch.add(cur.b, Gt.sum(dim=1), alpha=-lr, out=out.b)
            else:
                out.b.copy_(cur.b)
            return
        gWt, gb = grad if grad is not None else (Gt @ X, Gt.sum(dim=1))     # (k, d), (k,)
        if not intercept:
            gb = torch.zeros_like(gb)
        if weight_decay:
            gWt.add_(cur.Wt, alpha=weight_decay)
        if mu:
            self.vWt.mul_(mu).add_(gWt)
            self.vb.mul_(mu).add_(gb)
            gWt, gb = self.vWt, self.vb
        torch.add(cur.Wt, gWt, alpha=-lr, out=out.Wt)
        torch.add(cur.b, gb, alpha=-lr, out=out.b)


class GD(Solver):
    """Full-batch gradient descent: one step along -(μ v + ∇F) per epoch. The gradient at the new
    point is kept for the next epoch, so an epoch costs one gradient pass."""

    name = "gd"
    uses_lr = True

    def init(self, d, k, dtype, device) -> None:
        mu = self.config.momentum
        self.vW = torch.zeros(d, k, dtype=dtype, device=device) if mu else None
        self.vb = torch.zeros(k, dtype=dtype, device=device) if mu else None
        self._cache = None                       # (full_batch, params seen, F, gW, gb) at the current point

    def state_dict(self) -> dict:
        return {} if self.vW is None else {"vW": self.vW, "vb": self.vb}

    def load_state_dict(self, state: dict) -> None:
        if self.vW is not None and "vW" in state:
            self.vW.copy_(state["vW"])
            self.vb.copy_(state["vb"])

    def _value_and_grad(self, fb, params: Params):
        c = self._cache
        if c is not None and c[0] is fb and torch.equal(c[1].W, params.W) and torch.equal(c[1].b, params.b):
            return c[2:]
        return fb.value_and_grad(params)

    def iterate(self, fb, params: Params, guard: DivergenceGuard, epoch: int) -> EpochStats:
        lr = learning_rate(self.config, epoch)
        F, gW, gb = self._value_and_grad(fb, params)
        value = guard.check(F, params)
        gmax = grad_max(gW, gb)
        if gmax <= self.config.tol:
            return EpochStats(loss=value, samples=fb.n_total, steps=0, lr=lr, grad_max=gmax, converged=True)
        if self.vW is not None:
            self.vW.mul_(self.config.momentum).add_(gW)
            self.vb.mul_(self.config.momentum).add_(gb)
            gW, gb = self.vW, self.vb
        params.W.add_(gW, alpha=-lr)
        params.b.add_(gb, alpha=-lr)
        F_new, gW_new, gb_new = fb.value_and_grad(params)
        self._cache = (fb, params.clone(), F_new, gW_new, gb_new)
        extra = {"stalled": True} if self.no_progress(value, float(F_new), params.W.dtype) else {}
        return EpochStats(loss=float(F_new), samples=fb.n_total, steps=1, lr=lr, grad_max=gmax, extra=extra)
