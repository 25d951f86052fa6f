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
from .base import DivergenceGuard, EpochStats, Solver, accuracy_hits, grad_max, learning_rate


class SGD(Solver):
    name = "sgd"
    minibatch = True
    uses_lr = True

    def init(self, problem: Problem, params: Params) -> None:
        self.generator = torch.Generator(device="cpu").manual_seed(self.config.seed)
        self.vW = torch.zeros_like(params.W) if self.config.momentum else None
        self.vb = torch.zeros_like(params.b) if self.config.momentum else None

    def _update(self, params: Params, gW, gb, lr: float) -> None:
        mu = self.config.momentum
        if mu:
            self.vW.mul_(mu).add_(gW)
            self.vb.mul_(mu).add_(gb)
            gW, gb = self.vW, self.vb
        params.W.add_(gW, alpha=-lr)
        params.b.add_(gb, alpha=-lr)

    def epoch(self, problem: Problem, params: Params, epoch: int, guard: DivergenceGuard) -> EpochStats:
        X, Y, loss, wd = problem.X, problem.Y, problem.loss, problem.weight_decay
        lr = learning_rate(self.config, epoch)
        B = int(self.config.batch_size)
        perm = torch.randperm(problem.n, generator=self.generator).to(X.device)
        loss_sum = 0.0
        hits = X.new_zeros((), dtype=torch.long)
        steps = 0
        for start in range(0, problem.n, B):
            idx = perm[start:start + B]
            Xb, Yb = X.index_select(0, idx), Y.index_select(0, idx)   # (B, d), (B, k)
            Z = torch.addmm(params.b, Xb, params.W)                    # (B, k)
            L, G = loss.value_and_grad(Z, Yb)                          # G = dL/dZ (B, k)
            loss_sum += guard.check(L, params) * Xb.shape[0]
            if loss.classification:
                hits += accuracy_hits(Z, Yb)
            gW = Xb.T @ G                                              # (d, k)
            if wd:
                gW.add_(params.W, alpha=wd)
            self._update(params, gW, G.sum(dim=0), lr)
            steps += 1
        return EpochStats(loss=loss_sum / problem.n, samples=problem.n, steps=steps, lr=lr,
                          accuracy=float(hits) / problem.n if loss.classification else None)


class GD(SGD):
    """Full-batch gradient descent: one step along -∇F per epoch."""

    name = "gd"
    minibatch = False

    def epoch(self, problem: Problem, params: Params, epoch: int, guard: DivergenceGuard) -> EpochStats:
        lr = learning_rate(self.config, epoch)
        F, gW, gb = problem.value_and_grad(params)
        value = guard.check(F, params)
        gmax = grad_max(gW, gb)
        if gmax <= self.config.tol:
            return EpochStats(loss=value, samples=problem.n, steps=0, lr=lr, grad_max=gmax, converged=True)
        self._update(params, gW, gb, lr)
        return EpochStats(loss=float(problem.value(params)), samples=problem.n, steps=1, lr=lr,
                          grad_max=gmax)
