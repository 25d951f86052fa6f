r"""The closed form of ridge / least squares (``exact``), for the squared loss only.

Minimises F(W, b) = (1/2n) ||X W + 1 bᵀ - Y||² + (λ/2) ||W||² exactly. With the
column means x̄ (d,), ȳ (k,) and the centred second moments::

    C = (1/n) Σ (x_i - x̄)(x_i - x̄)ᵀ   (d, d),      c = (1/n) Σ (x_i - x̄)(y_i - ȳ)ᵀ   (d, k)
    (C + λ I) W = c,      b = ȳ - Wᵀ x̄

C and c are accumulated in float64 over chunks of rows, shifted by the first chunk's
mean to avoid cancellation, so memory is O(d² + d·k) plus one chunk. The system is
solved by Cholesky; when that fails or the matrix is ill-conditioned (estimated
condition number > 1e10), it warns (:class:`~linearnets.IllConditionedWarning`) and
falls back to a streamed QR least-squares solve (a second pass, O(d²) memory) that
returns the minimum-norm W (b unpenalised).
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from ..errors import DataError, IllConditionedWarning
from ..objective import Problem
from ..params import Params
from .base import DivergenceGuard, EpochStats, Solver

COND_LIMIT = 1e10


class MomentAccumulator:
    """Streams rows (X_c, Y_c) in; gives n, means and centred moments in float64.

    Features whose first-chunk mean is large against their spread (|mean| > 10·std for
    some feature) are shifted by that mean before their products are summed, which keeps
    the centred moments accurate (raw sums lose about log10(1 + (mean/std)²) digits); the
    shifted chunk goes into a reused buffer. Otherwise the raw chunk is used as it is, and
    the pass costs one Gram product: XᵀX plus [Y, 1]ᵀX for the cross terms and the sums.
    """

    SHIFT_RATIO = 10.0

    def __init__(self, comm=None):
        self.n = 0
        self.shift_x = self.shift_y = None
        self.comm = comm

    def _choose_shift(self, Xc: Tensor, Yc: Tensor) -> None:
        """Shift by the first chunk's means (rank 0's, shared with every rank in a distributed run)."""
        mean, std, ymean = Xc.mean(dim=0), Xc.std(dim=0, correction=0), Yc.mean(dim=0)
        if self.comm is not None:
            d = mean.shape[0]
            packed = torch.cat([mean, std, ymean]) if self.comm.rank == 0 else \
                Xc.new_zeros(2 * d + ymean.shape[0])
            self.comm.sum_(packed)                                # = rank 0's values everywhere
            mean, std, ymean = packed[:d], packed[d:2 * d], packed[2 * d:]
        self.shifted = bool((mean.abs() > self.SHIFT_RATIO * std).any())
        self.shift_x = mean if self.shifted else torch.zeros_like(mean)
        self.shift_y = ymean

    def reduce(self) -> None:
        """Sum the moments over the ranks (a distributed run): every rank then has them all."""
        if self.comm is not None:
            n = torch.tensor([float(self.n)], dtype=torch.float64)
            self.comm.sum_(n, self.sx, self.sy, self.sxx, self.sxy, self.syy)
            self.n = int(n)

    def add(self, Xc: Tensor, Yc: Tensor) -> None:
        Xc, Yc = Xc.to(torch.float64), Yc.to(torch.float64)
        if self.shift_x is None:
            self._choose_shift(Xc, Yc)
            d, k = Xc.shape[1], Yc.shape[1]
            self.sx, self.sy = Xc.new_zeros(d), Xc.new_zeros(k)
            self.sxx, self.sxy, self.syy = Xc.new_zeros(d, d), Xc.new_zeros(d, k), Xc.new_zeros(k, k)
            self._buf = torch.empty_like(Xc) if self.shifted else None
        m, k = Xc.shape[0], Yc.shape[1]
        if self.shifted:
            if m > self._buf.shape[0]:
                self._buf = torch.empty_like(Xc)
            Xc = torch.sub(Xc, self.shift_x, out=self._buf[:m])   # (n_c, d)
        Vt = torch.cat([(Yc - self.shift_y).T, Yc.new_ones(1, m)])  # [Y - t, 1]ᵀ (k+1, n_c)
        self.n += m
        self.sxx.addmm_(Xc.T, Xc)                                  # the one big product
        VX = Vt @ Xc                                               # (k+1, d): Σ y xᵀ and Σ x
        self.sxy += VX[:k].T                                       #   (this orientation is 1.5×
        self.sx += VX[k]                                           #    faster than Xᵀ V)
        self.sy += Vt[:k].sum(dim=1)
        self.syy.addmm_(Vt[:k], Vt[:k].T)

    def moments(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(x̄ (d,), ȳ (k,), C (d, d), c (d, k))."""
        mx, my = self.sx / self.n, self.sy / self.n            # means of the shifted data
        C = self.sxx / self.n - torch.outer(mx, mx)
        c = self.sxy / self.n - torch.outer(mx, my)
        return mx + self.shift_x, my + self.shift_y, C, c

    def loss(self, W: Tensor, lam: float) -> float:
        r"""F at the least-squares intercept, from the moments (no pass over the data):
        ½ tr(C_yy - 2 Wᵀc + WᵀCW) + (λ/2)||W||²."""
        _, _, C, c = self.moments()
        my = self.sy / self.n
        Cyy = self.syy / self.n - torch.outer(my, my)
        F = 0.5 * float(torch.trace(Cyy) - 2 * (W * c).sum() + (W * (C @ W)).sum())
        return max(F, 0.0) + 0.5 * lam * float(W.square().sum())


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


class Exact(Solver):
    name = "exact"
    squared_only = True
    checks_finite = True            # NaN/Inf in X or y make the moments non-finite: checked below

    def epoch(self, problem: Problem, params: Params, epoch: int, guard: DivergenceGuard) -> EpochStats:
        acc = MomentAccumulator(problem.comm)
        for Xc, Yc in problem.chunks():
            acc.add(Xc, Yc)
        acc.reduce()
        if not all(bool(torch.isfinite(t).all()) for t in (acc.sx, acc.sxx, acc.sy, acc.sxy)):
            raise DataError("Input X or y contains NaN or infinity (or values too large to square "
                            "in float64); remove or impute them before fitting")
        mean_x, mean_y, C, c = acc.moments()
        W, fallback = solve_ridge(C, c, problem.weight_decay)
        if fallback:
            warnings.warn("the normal equations are ill-conditioned or singular; solving by "
                          "least squares (QR) and returning the minimum-norm solution",
                          IllConditionedWarning, stacklevel=5)
            W = qr_least_squares(problem, acc.shift_x, acc.shift_y)
        params.W.copy_(W)                                      # (d, k), from float64
        params.b.copy_(mean_y - W.T @ mean_x)
        value = guard.check(acc.loss(W, problem.weight_decay), params)
        return EpochStats(loss=value, samples=problem.n_total, steps=1, converged=True,
                          extra={"fallback": fallback})


def qr_least_squares(problem: Problem, shift_x: Tensor, shift_y: Tensor) -> Tensor:
    r"""Least squares by a streamed QR (a second pass; accurate when the normal equations are not).

    R is the triangular factor of A = [1, X - s, Y - t] (n × (1+d+k)), accumulated as
    R ← qr([R; A_chunk]).R. Its block R_xx is the R factor of the *centred* X (the first
    Householder step removes the mean), so W = argmin ||R_xx W - R_xy|| solves the
    centred problem with cond(X), not cond(X)², and the SVD-based solve (gelsd) returns
    the minimum-norm W when X is rank-deficient. weight_decay adds rows √(nλ)·I for W.
    """
    d, k = problem.d, problem.k
    R = None
    for Xc, Yc in problem.chunks():
        Xc, Yc = Xc.to(torch.float64), Yc.to(torch.float64)
        A = torch.cat([Xc.new_ones(Xc.shape[0], 1), Xc - shift_x, Yc - shift_y], dim=1)
        R = torch.linalg.qr(A if R is None else torch.cat([R, A]), mode="r").R
    if problem.comm is not None:                         # stack the ranks' R factors, factor again
        R = R if R is not None else torch.zeros(0, 1 + d + k, dtype=torch.float64, device=problem.device)
        R = torch.linalg.qr(torch.cat(problem.comm.all_gather(_square(R, 1 + d + k))), mode="r").R
    if problem.weight_decay:
        ridge = R.new_zeros(d, 1 + d + k)
        ridge[:, 1:1 + d] = (problem.n_total * problem.weight_decay) ** 0.5 * torch.eye(d, dtype=R.dtype,
                                                                                   device=R.device)
        R = torch.linalg.qr(torch.cat([R, ridge]), mode="r").R
    Rxx, Rxy = R[1:1 + d, 1:1 + d], R[1:1 + d, 1 + d:]
    if Rxx.device.type == "cpu":
        return torch.linalg.lstsq(Rxx, Rxy, driver="gelsd", rcond=1e-12).solution
    return torch.linalg.pinv(Rxx, rtol=1e-12) @ Rxy          # CUDA lstsq has no min-norm driver


def _square(R: Tensor, p: int) -> Tensor:
    """R padded with zero rows to (p, p) (a rank with fewer than p rows has a shorter R)."""
    if R.shape[0] == p:
        return R
    return torch.cat([R, R.new_zeros(p - R.shape[0], p)])
