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
    small class count (softmax over a leading dimension, ``G_tᵀ``-free weight update).

    Batches come from :meth:`Problem.batches` (in memory or streamed from disk). In a
    data-parallel run every step all-reduces one buffer [Σ G_iᵀx_i, Σ G_i, Σ ℓ_i, m] over the
    ranks and divides by the global batch size, so P ranks with batch B take the step of one
    process with the P·B rows of their batches."""

    name = "sgd"
    minibatch = True
    uses_lr = True

    def init(self, problem: Problem, params: Params) -> None:
        self.vW = torch.zeros_like(params.W.T) if self.config.momentum else None   # (k, d)
        self.vb = torch.zeros_like(params.b) if self.config.momentum else None

    def state_dict(self) -> dict:
        return {} if self.vW is None else {"vW": self.vW, "vb": self.vb}

    def load_state_dict(self, state: dict) -> None:
        if self.vW is not None:
            self.vW.copy_(state["vW"])
            self.vb.copy_(state["vb"])

    def epoch(self, problem: Problem, params: Params, epoch: int, guard: DivergenceGuard) -> EpochStats:
        loss, wd, mu, comm = problem.loss, problem.weight_decay, self.config.momentum, problem.comm
        lr = learning_rate(self.config, epoch)
        B, k, d = int(self.config.batch_size), problem.k, problem.d
        n_steps = problem.steps_per_epoch(B)
        skip, partial = self.take_resume(epoch)
        loss_sum, samples = float(partial.get("loss_sum", 0.0)), int(partial.get("samples", 0))
        hits = torch.tensor(float(partial.get("hits", 0)), dtype=torch.float64, device=problem.device)
        count_hits = problem.loss.classification
        ckpt = self.checkpointer
        # double buffer: step t reads (W_t, b_t) from one pair and writes (W_t+1, b_t+1) into the
        # other, so the last parameters with a finite loss are always at hand, without copies
        cur = Params(params.W.T.contiguous(), params.b.clone())          # Wᵀ (k, d), b (k,)
        prev = cur.clone()
        buf = cur.W.new_zeros(k * d + k + 2) if comm is not None else None
        step = 0
        try:
            for Xb, Tb, Lb in problem.batches(epoch, B, self.config.seed):
                step += 1
                if step <= skip:                                         # resume: replay the order only
                    continue
                m = Xb.shape[0]
                if m:
                    Zt = torch.addmm(cur.b.view(k, 1), cur.W, Xb.T)      # (k, B) = Wᵀ Xᵀ + b
                    L, Gt = loss.value_and_grad(Zt, Tb, dim=0)           # Gt = (dL/dZ)ᵀ (k, B)
                    if count_hits:                                       # z_label is the max ⇔ hit
                        hits += (Zt.gather(0, Lb[None, :]) >= Zt.amax(dim=0, keepdim=True)).sum()
                if comm is not None:                                     # the global batch's mean gradient
                    M = self._all_reduce_step(comm, buf, Xb, Gt if m else None, L if m else None, k, d)
                    gWt, gb = buf[:k * d].view(k, d), buf[k * d:k * d + k]
                    loss_sum += guard.check(buf[-2], None) * M
                    samples += M
                elif m:
                    loss_sum += guard.check(L, None) * m
                    samples += m
                    gWt, gb = (Gt @ Xb, Gt.sum(dim=1)) if mu else (None, None)   # (k, d), (k,)
                else:
                    continue
                if gWt is None:                                          # (1 - ηλ) Wᵀ - η Gᵀ X, fused
                    torch.addmm(cur.W, Gt, Xb, beta=1.0 - lr * wd, alpha=-lr, out=prev.W)
                    torch.add(cur.b, Gt.sum(dim=1), alpha=-lr, out=prev.b)
                else:
                    if wd:
                        gWt.add_(cur.W, alpha=wd)
                    if mu:
                        self.vW.mul_(mu).add_(gWt)
                        self.vb.mul_(mu).add_(gb)
                        gWt, gb = self.vW, self.vb
                    torch.add(cur.W, gWt, alpha=-lr, out=prev.W)
                    torch.add(cur.b, gb, alpha=-lr, out=prev.b)
                cur, prev = prev, cur
                if ckpt is not None and ckpt.due(step) and step < n_steps:
                    ckpt.save(epoch=epoch, step=step, params=Params(cur.W.T, cur.b),
                              solver_state=self.state_dict(),
                              partial={"loss_sum": loss_sum, "samples": samples, "hits": float(hits)})
        except DivergenceError:
            cur = prev                                                   # the last finite-loss params
            raise
        finally:
            params.W.copy_(cur.W.T)
            params.b.copy_(cur.b)
        accuracy = None
        if count_hits:
            if comm is not None:
                comm.sum_(hits)
            accuracy = float(hits) / max(samples, 1)
        return EpochStats(loss=loss_sum / max(samples, 1), samples=samples, steps=n_steps, lr=lr,
                          accuracy=accuracy)

    @staticmethod
    def _all_reduce_step(comm, buf, Xb, Gt, L, k: int, d: int) -> int:
        """buf ← Σ over ranks of [m·Gᵀ X_b, m·Σ G, m·L, m], then the sums ÷ M (the global batch)."""
        if Gt is None:
            buf.zero_()
        else:
            m = Xb.shape[0]
            torch.mm(Gt, Xb, out=buf[:k * d].view(k, d))
            torch.sum(Gt, dim=1, out=buf[k * d:k * d + k])
            buf[-2] = L
            buf[:-1].mul_(m)
            buf[-1] = m
        comm.all_reduce_(buf)
        M = int(round(float(buf[-1])))
        buf[:-1].div_(M)
        return M


class GD(SGD):
    """Full-batch gradient descent: one step along -∇F per epoch."""

    name = "gd"
    minibatch = False

    def init(self, problem: Problem, params: Params) -> None:
        super().init(problem, params)
        self.vW = self.vW.T.contiguous() if self.vW is not None else None   # GD works in the row layout

    def epoch(self, problem: Problem, params: Params, epoch: int, guard: DivergenceGuard) -> EpochStats:
        lr = learning_rate(self.config, epoch)
        F, gW, gb = problem.value_and_grad(params)
        value = guard.check(F, params)
        gmax = grad_max(gW, gb)
        if gmax <= self.config.tol:
            return EpochStats(loss=value, samples=problem.n_total, steps=0, lr=lr, grad_max=gmax, converged=True)
        mu = self.config.momentum
        if mu:
            self.vW.mul_(mu).add_(gW)
            self.vb.mul_(mu).add_(gb)
            gW, gb = self.vW, self.vb
        params.W.add_(gW, alpha=-lr)
        params.b.add_(gb, alpha=-lr)
        return EpochStats(loss=float(problem.value(params)), samples=problem.n_total, steps=1, lr=lr,
                          grad_max=gmax)
