r"""Minibatch stochastic gradient descent (``sgd``) and full-batch gradient descent (``gd``).

Each epoch draws a fresh permutation π of the n samples and walks it in batches B_t::

    G_t = dL_B/dZ at (W_t, b_t),   g_W = X_Bᵀ G_t + λ W_t,   g_b = 1ᵀ G_t
    v ← μ v + g      (μ = momentum; v = g when μ = 0)
    θ ← θ - η_e v    (η_e = the scheduled learning rate of epoch e)

``gd`` is the same update with B = all samples, one step per epoch. No autograd: the
gradient is the loss's analytic ``G`` pushed through the layer.
"""

from __future__ import annotations

import torch

from ..objective import Problem
from ..params import Params
from ..errors import DivergenceError
from .base import DivergenceGuard, EpochStats, Solver, grad_max, learning_rate


class SGD(Solver):
    """Minibatch SGD. The epoch runs in the class-major layout: ``W_t = Wᵀ`` (k, d), ``Z_t`` (k, B),
    ``G_t`` (k, B) — the same arithmetic as the row layout, with PyTorch's fast kernels for a
    small class count (softmax over a leading dimension, ``G_tᵀ``-free weight update)."""

    name = "sgd"
    minibatch = True
    uses_lr = True

    def init(self, problem: Problem, params: Params) -> None:
        self.generator = torch.Generator(device="cpu").manual_seed(self.config.seed)
        self.vW = torch.zeros_like(params.W.T) if self.config.momentum else None   # (k, d)
        self.vb = torch.zeros_like(params.b) if self.config.momentum else None

    def epoch(self, problem: Problem, params: Params, epoch: int, guard: DivergenceGuard) -> EpochStats:
        X, loss, wd, mu = problem.X, problem.loss, problem.weight_decay, self.config.momentum
        labels = problem.labels if problem.loss.classification else None
        lr = learning_rate(self.config, epoch)
        B, n, k = int(self.config.batch_size), problem.n, problem.k
        perm = torch.randperm(n, generator=self.generator).to(X.device)
        batches = perm.split(B)
        # targets in the order of this epoch: labels (n,) or Yᵀ (k, n), sliced per batch below
        T = problem.target_columns(perm)
        T_batches = T.split(B, dim=0 if T.ndim == 1 else 1)
        # double buffer: step t reads (W_t, b_t) from one pair and writes (W_t+1, b_t+1) into the
        # other, so the last parameters with a finite loss are always at hand, without copies
        cur = Params(params.W.T.contiguous(), params.b.clone())          # Wᵀ (k, d), b (k,)
        prev = cur.clone()
        Z_epoch = X.new_empty(k, n) if labels is not None else None     # logits, for the accuracy
        loss_sum, steps, pos = 0.0, 0, 0
        try:
            for idx, Tb in zip(batches, T_batches):
                Xb = X.index_select(0, idx)                              # (B, d)
                m = Xb.shape[0]
                Zt = torch.addmm(cur.b.view(k, 1), cur.W, Xb.T)          # (k, B) = Wᵀ Xᵀ + b
                if Z_epoch is not None:
                    Z_epoch[:, pos:pos + m] = Zt
                L, Gt = loss.value_and_grad(Zt, Tb, dim=0)               # Gt = (dL/dZ)ᵀ (k, B)
                loss_sum += guard.check(L, None) * m
                if mu:
                    gWt = Gt @ Xb                                        # (k, d)
                    if wd:
                        gWt.add_(cur.W, alpha=wd)
                    self.vW.mul_(mu).add_(gWt)
                    self.vb.mul_(mu).add_(Gt.sum(dim=1))
                    torch.add(cur.W, self.vW, alpha=-lr, out=prev.W)
                    torch.add(cur.b, self.vb, alpha=-lr, out=prev.b)
                else:                                                    # (1 - ηλ) Wᵀ - η Gᵀ X, fused
                    torch.addmm(cur.W, Gt, Xb, beta=1.0 - lr * wd, alpha=-lr, out=prev.W)
                    torch.add(cur.b, Gt.sum(dim=1), alpha=-lr, out=prev.b)
                cur, prev = prev, cur
                pos += m
                steps += 1
        except DivergenceError:
            cur = prev                                                   # the last finite-loss params
            raise
        finally:
            params.W.copy_(cur.W.T)
            params.b.copy_(cur.b)
        accuracy = None
        if labels is not None:                                           # z_label is the max ⇔ hit
            lab = labels.index_select(0, perm)[None, :]
            accuracy = float((Z_epoch.gather(0, lab) >= Z_epoch.amax(dim=0, keepdim=True)).sum()) / n
        return EpochStats(loss=loss_sum / n, samples=n, steps=steps, lr=lr, accuracy=accuracy)


class GD(SGD):
    """Full-batch gradient descent: one step along -∇F per epoch."""

    name = "gd"
    minibatch = False

    def init(self, problem: Problem, params: Params) -> None:
        super().init(problem, params)
        self.vW = self.vW.T if self.vW is not None else None         # GD works in the row layout

    def epoch(self, problem: Problem, params: Params, epoch: int, guard: DivergenceGuard) -> EpochStats:
        lr = learning_rate(self.config, epoch)
        F, gW, gb = problem.value_and_grad(params)
        value = guard.check(F, params)
        gmax = grad_max(gW, gb)
        if gmax <= self.config.tol:
            return EpochStats(loss=value, samples=problem.n, steps=0, lr=lr, grad_max=gmax, converged=True)
        mu = self.config.momentum
        if mu:
            self.vW.mul_(mu).add_(gW)
            self.vb.mul_(mu).add_(gb)
            gW, gb = self.vW, self.vb
        params.W.add_(gW, alpha=-lr)
        params.b.add_(gb, alpha=-lr)
        return EpochStats(loss=float(problem.value(params)), samples=problem.n, steps=1, lr=lr,
                          grad_max=gmax)
