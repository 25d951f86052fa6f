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

import numpy as np
import torch
from torch import Tensor

from .. import kernels
from ..data.sparse import FREE, matmul, xt_g
from ..params import ClassMajor, Params
from .base import DivergenceGuard, EpochStats, Solver, grad_max, learning_rate


class SGD(Solver):
    """Minibatch SGD: the update rule and its momentum buffer, in the class-major layout
    (``Wᵀ`` (k, d); see :class:`~linearnets.params.ClassMajor`)."""

    name = "sgd"
    minibatch = True
    uses_lr = True

    def init(self, d, k, dtype, device, *, rows: bool = False) -> None:
        """``rows``: keep the momentum row-major — (d, k) in memory, seen as its (k, d) transpose —
        the layout of :class:`SparseSteps`, so no epoch transposes it."""
        mu = self.config.momentum
        if not mu:
            self.vWt = self.vb = None
            return
        self.vWt = (torch.zeros(d, k, dtype=dtype, device=device).T if rows
                    else torch.zeros(k, d, dtype=dtype, device=device))                # (k, d)
        self.vb = torch.zeros(k, dtype=dtype, device=device)

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


class SparseSteps:
    r"""SGD steps on sparse minibatches in O(nnz · k), equal (to rounding) to the dense update.

    A step's data gradient ``Gᵀ X`` is zero in every column (feature) the batch does not use, so
    such a row j of W (and of the momentum v) follows a fixed linear recurrence within an epoch
    (η, λ, μ constant)::

        x_j = (W_j, v_j):   x_j ← A x_j,   A = [[1 − ηλ, −ημ], [λ, μ]]     (μ = 0: W_j ← (1 − ηλ) W_j)

    Each row keeps the step τ_j at which it was last brought up to date; a step brings the rows it
    touches to the present with A^(t − τ_j) (a table of the epoch's powers of A), computes the
    logits and the gradient on those r rows only, and writes them back. The end of the epoch (or a
    checkpoint, or a listener asking for the parameters) computes every row at the present step —
    O(d·k), once. With λ = μ = 0, A = I and nothing lags.

    The penalty (λ/2)‖W_t‖² of each step's loss is exact too: the rows last updated at step τ
    keep the sums Q_τ = (Σ w², Σ w·v, Σ v²), and ‖W_t‖² = Σ_τ (a² Q_τ,0 + 2ac Q_τ,1 + c² Q_τ,2) with
    (a, c) the first row of A^(t−τ) — O(steps) per step, no pass over W.

    Layout: W, v are (d, k), rows per feature (a gather of r rows is r contiguous k-vectors).

    Plain SGD (λ = μ = 0) keeps no lag and needs no compaction: the logits read W's rows where
    they lie and the update adds the nnz terms −η x_ij G_i into them. For cross-entropy on hard
    labels (CPU) both halves are compiled loops (:mod:`linearnets.kernels`: ~80 µs of a ~150 µs
    step at B = 64, 50 non-zeros a row, k = 20); otherwise PyTorch ops (``embedding_bag``, one
    accumulating scatter) — ~200 µs at B = 32.
    """

    def __init__(self, params: Params, vWt: Tensor | None, vb: Tensor | None, *, lr: float, weight_decay: float,
                 momentum: float, intercept: bool, steps: int):
        self.W = params.W.clone(memory_format=torch.contiguous_format)          # (d, k); params.W is written
        self.b = params.b.clone()                                                #   at the end (or a checkpoint)
        self.v = None if vWt is None else vWt.T.clone(memory_format=torch.contiguous_format)   # (d, k)
        self.vb = vb
        self.lr, self.wd, self.mu, self.intercept = float(lr), float(weight_decay), float(momentum), intercept
        d = self.W.shape[0]
        self.t = 0
        self.lags = bool(self.wd or self.mu)
        self.tau = torch.zeros(d, dtype=torch.int64, device=self.W.device) if self.lags else None
        self.powers = self._powers(steps + 1) if self.lags else None               # (steps+1, 2, 2)
        self._powers_cast = None
        self.Q = None
        if self.wd:
            self.Q = torch.zeros(steps + 2, 3, dtype=torch.float64, device=self.W.device)
            self.Q[0, 0] = self.W.square().sum(dtype=torch.float64)
            if self.v is not None:
                self.Q[0, 1] = (self.W * self.v).sum(dtype=torch.float64)
                self.Q[0, 2] = self.v.square().sum(dtype=torch.float64)
        self._pending = None
        self._undo = None
        self._undo_rows = None
        self._kernels = None if self.lags else kernels.step_kernels(self.W)    # compiled plain steps
        self._arrays = (self.W.numpy(), self.b.numpy()) if self._kernels is not None else None
        self._undo_b = self.b.clone()
        self.hits = None                           # the last compiled forward's hits (else None)
        self.slot = torch.full((d,), FREE, dtype=torch.int64, device=self.W.device)      # for CSR.compact

    def _powers(self, n: int) -> Tensor:
        """A^0 … A^(n−1), float64 (n, 2, 2)."""
        eta, lam, mu = self.lr, self.wd, self.mu
        A = np.array([[1.0 - eta * lam, -eta * mu], [lam, mu]])
        out = np.empty((n, 2, 2))
        out[0] = np.eye(2)
        for i in range(1, n):
            out[i] = A @ out[i - 1]
        return torch.from_numpy(out).to(self.W.device)

    @staticmethod
    def _row_sums(W: Tensor, v: Tensor | None) -> Tensor:
        """(Σ_k w², Σ_k w·v, Σ_k v²) per row (r, 3), float64 (summed over k in W's dtype)."""
        out = W.new_zeros(W.shape[0], 3)
        torch.sum(W * W, dim=1, out=out[:, 0])
        if v is not None:
            torch.sum(W * v, dim=1, out=out[:, 1])
            torch.sum(v * v, dim=1, out=out[:, 2])
        return out.double()

    def _advance(self, W: Tensor, v: Tensor | None, lag: Tensor) -> tuple[Tensor, Tensor | None]:
        """Rows (W, v) moved ``lag`` steps on (lag (r,) int64)."""
        P = self.powers_as(W.dtype)                                                 # (4, steps+1)
        if v is None:
            return W * P[0].index_select(0, lag)[:, None], None
        p00, p01, p10, p11 = (P[i].index_select(0, lag)[:, None] for i in range(4))
        return torch.addcmul(W * p00, v, p01), torch.addcmul(W * p10, v, p11)

    def powers_as(self, dtype: torch.dtype) -> Tensor:
        """The entries of A^0 … A^steps, (4, steps+1) in ``dtype`` (a00, a01, a10, a11)."""
        if self._powers_cast is None or self._powers_cast.dtype != dtype:
            self._powers_cast = self.powers.reshape(-1, 4).T.contiguous().to(dtype)
        return self._powers_cast

    def loss_and_logit_grad(self, objective, block) -> tuple[Tensor, Tensor, Tensor]:
        """(L, Gᵀ (k, m), Zᵀ (k, m)) of a sparse block at the present parameters (nothing is
        written yet: the update does that, after the guard has seen the loss)."""
        self.hits = None
        if not self.lags:                                  # every row is up to date: read W where it lies
            X = block.X
            if self._kernels is not None and kernels.eligible(objective.loss, block):
                return self._fused_forward(objective, block)
            Zt = (matmul(X, self.W) + self.b).T.contiguous()
            L, Gt, Zt = objective.logit_grad(Zt, block)
            self._pending = X
            return L, Gt, Zt
        cols, Xc = block.X.compact(self.slot)
        Wc = self.W.index_select(0, cols)
        vc = None if self.v is None else self.v.index_select(0, cols)
        stored = (Wc, vc)
        if self.lags:
            lag = self.t - self.tau.index_select(0, cols)
            Wc, vc = self._advance(Wc, vc, lag)
        Zt = (matmul(Xc, Wc) + self.b).T.contiguous()
        L, Gt, Zt = objective.logit_grad(Zt, block)
        self._pending = (cols, Xc, Wc, vc, stored)
        return L, Gt, Zt

    def penalty(self) -> float:
        """(λ/2)‖W_t‖² at the present step."""
        if not self.wd:
            return 0.0
        t = self.t
        P = self.powers[:t + 1].flip(0)                                           # A^(t−τ), τ = 0 … t
        a, c = P[:, 0, 0], P[:, 0, 1]
        Q = self.Q[:t + 1]
        return 0.5 * self.wd * float((a * a * Q[:, 0] + 2 * a * c * Q[:, 1] + c * c * Q[:, 2]).sum())

    def update(self, Gt: Tensor) -> None:
        """One step with the pending block's ``Gᵀ`` (k, m): the touched rows, b (and their momenta)."""
        if not self.lags:
            if isinstance(self._pending, tuple):
                self._fused_update()
            else:
                self._plain_update(Gt)
            return
        cols, Xc, Wc, vc, stored = self._pending
        gd = xt_g(Gt.T, Xc)                                                         # (r, k) data gradient
        gb = Gt.sum(dim=1) if self.intercept else torch.zeros_like(self.b)
        lr, wd, mu = self.lr, self.wd, self.mu
        self._undo = (cols, stored, None if self.tau is None else self.tau.index_select(0, cols),
                      self.b.clone(), None if self.vb is None else self.vb.clone())
        if mu:
            if wd:
                gd.add_(Wc, alpha=wd)
            vc = vc * mu + gd
            Wc = Wc - lr * vc
            self.vb.mul_(mu).add_(gb)
            gb = self.vb
        else:
            Wc = Wc * (1.0 - lr * wd) - lr * gd if wd else Wc - lr * gd
        self.b.sub_(gb, alpha=lr)
        if self.Q is not None:
            tau_old = self._undo[2]
            self.Q.index_add_(0, tau_old, self._row_sums(*stored), alpha=-1.0)
            self.Q[self.t + 1] += self._row_sums(Wc, vc).sum(dim=0)
        self.W.index_copy_(0, cols, Wc)
        if self.v is not None:
            self.v.index_copy_(0, cols, vc)
        self.t += 1
        if self.tau is not None:
            self.tau.index_fill_(0, cols, self.t)
        self._pending = None

    def _fused_forward(self, objective, block) -> tuple[float, Tensor, Tensor]:
        """The forward half of a plain step as one compiled loop (:mod:`~linearnets.kernels`)."""
        X = block.X
        m, k = X.shape[0], self.W.shape[1]
        W, b = self._arrays
        col = X.col.long()
        Z, G = self.W.new_empty(m, k), self.W.new_empty(m, k)
        w = objective.relative_weights(block)
        w, w_raw = (W[:0, 0], W[:0, 0]) if w is None else (w.numpy(), block.w.numpy())
        total, hit, _ = self._kernels[0](X.crow.numpy(), col.numpy(), X.val.numpy(), W, b, block.T.numpy(), w, w_raw,
                                          float(m), Z.numpy(), G.numpy())
        self.hits = hit if block.w is not None else int(hit)
        self._pending = (X, col, G)
        return total / m, G.T, Z.T

    def _fused_update(self) -> None:
        X, col, G = self._pending
        nnz, k = col.shape[0], self.W.shape[1]
        if self._undo_rows is None or self._undo_rows.shape[0] < nnz:             # the batch's entries' rows
            self._undo_rows = self.W.new_empty(nnz + nnz // 4, k)
        undo = self._undo_rows[:nnz]
        W, b = self._arrays
        self._kernels[1](X.crow.numpy(), col.numpy(), X.val.numpy(), W, b, G.numpy(), float(self.lr),
                         bool(self.intercept), undo.numpy(), self._undo_b.numpy())
        self._undo = (col, (undo, None), None, self._undo_b, None)
        self.t += 1
        self._pending = None

    def _plain_update(self, Gt: Tensor) -> None:
        """W_j ← W_j − η Σ_i x_ij G_i for the entries (i, j) of the block, b ← b − η Σ_i G_i: one
        accumulating scatter of the nnz scaled rows G_i x_ij (no λ, no μ: nothing else moves)."""
        X = self._pending
        col = X.col.long()
        G = Gt.T.contiguous()                          # (m, k); a transposed view gathers ~7× slower
        terms = torch.repeat_interleave(G, X.crow.diff(), dim=0, output_size=X.nnz).mul_((X.val * -self.lr)[:, None])
        self._undo = (col, (self.W.index_select(0, col), None), None, self.b.clone(), None)   # the rows as they were
        if self.intercept:
            self.b.sub_(Gt.sum(dim=1), alpha=self.lr)
        self.W.index_add_(0, col, terms)
        self.t += 1
        self._pending = None

    def rollback(self) -> None:
        """Undo the last update (the guard found the loss after it not finite)."""
        if self._undo is None:
            return
        cols, (Wc, vc), tau, b, vb = self._undo
        self.W.index_copy_(0, cols, Wc)
        if self.v is not None:
            self.v.index_copy_(0, cols, vc)
        if self.tau is not None:
            self.tau.index_copy_(0, cols, tau)
        self.b.copy_(b)
        if vb is not None:
            self.vb.copy_(vb)
        self.t -= 1
        self._undo = None

    def present(self) -> tuple[Tensor, Tensor | None]:
        """(W, v) at the present step, every row brought up to date — into new tensors, O(d·k);
        the lazy state itself is left as it is (so a later rollback stays exact)."""
        if not self.lags or not self.t:
            return self.W, self.v
        return self._advance(self.W, self.v, self.t - self.tau)

    def params(self) -> Params:
        """The present parameters (for a step listener: valid during the call)."""
        return Params(self.present()[0], self.b)

    def write_to(self, params: Params, vWt: Tensor | None) -> None:
        """Present parameters → ``params`` (and the momentum → ``vWt`` (k, d))."""
        W, v = self.present()
        params.W.copy_(W)
        params.b.copy_(self.b)
        if vWt is not None:
            vWt.T.copy_(v)
