r"""The closed form of ridge / least squares (``exact``), for the squared loss only.

Minimises F(W, b) = (1/2n) ||X W + 1 bᵀ - Y||² + (λ/2) ||W||² exactly. With the
column means x̄ (d,), ȳ (k,) and the centred second moments::

    C = (1/n) Σ (x_i - x̄)(x_i - x̄)ᵀ   (d, d),      c = (1/n) Σ (x_i - x̄)(y_i - ȳ)ᵀ   (d, k)
    (C + λ I) W = c,      b = ȳ - Wᵀ x̄

C and c are accumulated in float64 over chunks of rows, shifted by the first chunk's
mean to avoid cancellation, so memory is O(d² + d·k) plus one chunk. The system is
solved by Cholesky; when that fails or the matrix is ill-conditioned (estimated
condition number > 1e10), it warns (:class:`~linearnets.IllConditionedWarning`) and
falls back to a least-squares solve that returns the minimum-norm W (b unpenalised).
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from ..errors import IllConditionedWarning
from ..objective import Problem
from ..params import Params
from .base import DivergenceGuard, EpochStats, Solver

COND_LIMIT = 1e10


class MomentAccumulator:
    """Streams rows (X_c, Y_c) in; gives n, means and centred moments in float64."""

    def __init__(self):
        self.n = 0
        self.shift_x = self.shift_y = None

    def add(self, Xc: Tensor, Yc: Tensor) -> None:
        Xc, Yc = Xc.to(torch.float64), Yc.to(torch.float64)
        if self.shift_x is None:
            self.shift_x, self.shift_y = Xc.mean(dim=0), Yc.mean(dim=0)
            d, k = Xc.shape[1], Yc.shape[1]
            self.sx = Xc.new_zeros(d)
            self.sy = Xc.new_zeros(k)
            self.sxx = Xc.new_zeros(d, d)
            self.sxy = Xc.new_zeros(d, k)
        Xs, Ys = Xc - self.shift_x, Yc - self.shift_y        # (n_c, d), (n_c, k)
        self.n += Xc.shape[0]
        self.sx += Xs.sum(dim=0)
        self.sy += Ys.sum(dim=0)
        self.sxx.addmm_(Xs.T, Xs)
        self.sxy.addmm_(Xs.T, Ys)

    def moments(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(x̄ (d,), ȳ (k,), C (d, d), c (d, k))."""
        mx, my = self.sx / self.n, self.sy / self.n            # means of the shifted data
        C = self.sxx / self.n - torch.outer(mx, mx)
        c = self.sxy / self.n - torch.outer(mx, my)
        return mx + self.shift_x, my + self.shift_y, C, c


def solve_ridge(C: Tensor, c: Tensor, lam: float) -> tuple[Tensor, bool]:
    """Solve (C + λI) W = c by Cholesky; returns (W, used_fallback). float64 in and out."""
    A = C + lam * torch.eye(C.shape[0], dtype=C.dtype, device=C.device)
    L, info = torch.linalg.cholesky_ex(A)
    if int(info) == 0:
        diag = L.diagonal()
        cond = float((diag.max() / diag.min()) ** 2) if float(diag.min()) > 0 else float("inf")
        if cond <= COND_LIMIT:
            return torch.cholesky_solve(c, L), False
    return None, True


def min_norm_solution(A: Tensor, c: Tensor, rcond: float = 1e-12) -> Tensor:
    """Minimum-norm solution of A W = c for symmetric PSD A (eigenvalues below rcond·max dropped)."""
    evals, V = torch.linalg.eigh(A)
    keep = evals > rcond * evals.max().clamp_min(0)
    inv = torch.where(keep, 1.0 / evals.where(keep, torch.ones_like(evals)), torch.zeros_like(evals))
    return V @ (inv[:, None] * (V.T @ c))


class Exact(Solver):
    name = "exact"
    squared_only = True

    def epoch(self, problem: Problem, params: Params, epoch: int, guard: DivergenceGuard) -> EpochStats:
        acc = MomentAccumulator()
        for Xc, Yc in problem.chunks():
            acc.add(Xc, Yc)
        mean_x, mean_y, C, c = acc.moments()
        W = self.solve(mean_x, mean_y, C, c, problem)        # (d, k) float64
        params.W.copy_(W)
        params.b.copy_(mean_y - W.T @ mean_x)
        value = guard.check(problem.value(params), params)
        return EpochStats(loss=value, samples=problem.n, steps=1, converged=True)

    def solve(self, mean_x, mean_y, C, c, problem: Problem) -> Tensor:
        lam = problem.weight_decay
        W, fallback = solve_ridge(C, c, lam)
        if not fallback:
            return W
        warnings.warn("the normal equations are ill-conditioned or singular; solving by least "
                      "squares and returning the minimum-norm solution", IllConditionedWarning,
                      stacklevel=6)
        if problem.n * problem.d <= 50_000_000:
            # Accurate path for data in memory: SVD-based least squares on the centred data,
            # which does not square the condition number.
            X = problem.X.to(torch.float64) - mean_x
            Yc = problem.Y.to(torch.float64) - mean_y
            if lam:
                d = problem.d
                X = torch.cat([X, (problem.n * lam) ** 0.5 * torch.eye(d, dtype=X.dtype, device=X.device)])
                Yc = torch.cat([Yc, Yc.new_zeros(d, Yc.shape[1])])
            return _lstsq_min_norm(X, Yc)
        lamI = lam * torch.eye(C.shape[0], dtype=C.dtype, device=C.device)
        return min_norm_solution(C + lamI, c)


def _lstsq_min_norm(A: Tensor, B: Tensor) -> Tensor:
    if A.device.type == "cpu":
        return torch.linalg.lstsq(A, B, driver="gelsd").solution
    return torch.linalg.pinv(A) @ B                      # CUDA lstsq has no min-norm driver

