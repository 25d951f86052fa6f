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

The moments are the solver's state: ``partial_fit`` adds each new chunk of rows to them and
solves again, so fitting chunk by chunk equals fitting all rows at once. (When the moments span
earlier calls, the fallback solves the normal equations by an SVD instead — the rows of earlier
calls are not kept.)
"""

from __future__ import annotations

import copy
import math
import warnings

import torch
from scipy.linalg import lapack
from torch import Tensor

from .. import memory
from ..data.source import DataSource
from ..data.sparse import CSR, dense_pieces, gram, gt_x
from ..distributed import LOCAL
from ..errors import DataError, IllConditionedWarning
from ..objective import FullBatch
from ..params import Params
from .base import DivergenceGuard, EpochStats, Solver

COND_LIMIT = 1e10


class MomentAccumulator:
    """Streams rows (X_c (m, d), Tᵀ_c (k, m)) in; gives n, means and centred moments in float64.

    Features whose first-chunk mean is large against their spread (|mean| > 10·std for
    some feature) are shifted by that mean before their products are summed, which keeps
    the centred moments accurate (raw sums lose about log10(1 + (mean/std)²) digits); the
    shifted chunk goes into a reused buffer. Otherwise the raw chunk is used as it is, and
    the pass costs one Gram product: XᵀX plus [Y, 1]ᵀX for the cross terms and the sums.
    In a data-parallel run every rank uses rank 0's shift, so the sums of the ranks add up.
    """

    SHIFT_RATIO = 10.0
    SUMS = ("sx", "sy", "sxx", "sxy", "syy")

    def __init__(self):
        self.n = 0
        self.shift_x = self.shift_y = None
        self._buf = None

    def _choose_shift(self, Xc: Tensor, Yt: Tensor, comm) -> None:
        """Shift by the first chunk's means (rank 0's, shared with every rank in a distributed run).
        Sparse rows are never shifted (that would densify them)."""
        if isinstance(Xc, CSR):
            mean = std = torch.zeros(Xc.shape[1], dtype=torch.float64, device=Xc.device)
        else:
            mean, std = Xc.mean(dim=0), Xc.std(dim=0, correction=0)
        ymean = Yt.mean(dim=1)
        if comm.world_size > 1:
            d = mean.shape[0]
            packed = torch.cat([mean, std, ymean]) if comm.rank == 0 else Yt.new_zeros(2 * d + ymean.shape[0])
            comm.sum_(packed)                                     # = rank 0's values everywhere
            mean, std, ymean = packed[:d], packed[d:2 * d], packed[2 * d:]
        shifted = bool((mean.abs() > self.SHIFT_RATIO * std).any())
        self.shift_x = mean if shifted else torch.zeros_like(mean)
        self.shift_y = ymean
        d, k = Xc.shape[1], Yt.shape[0]
        self.sx, self.sy = Yt.new_zeros(d), Yt.new_zeros(k)
        self.sxx, self.sxy, self.syy = Yt.new_zeros(d, d), Yt.new_zeros(d, k), Yt.new_zeros(k, k)

    @property
    def shifted(self) -> bool:
        return self.shift_x is not None and bool(self.shift_x.any())

    def add(self, Xc: Tensor, Yt: Tensor, comm=LOCAL, w: Tensor | None = None) -> None:
        """Add the rows ``Xc`` (m, d) with targets ``Yt`` (k, m) and weights ``w`` (m,) (all 1 if None):
        every sum is weighted, and n counts Σ w."""
        Xc, Yt = Xc.to(torch.float64), Yt.to(torch.float64)
        if self.shift_x is None:
            self._choose_shift(Xc, Yt, comm)
        m, k = Xc.shape[0], Yt.shape[0]
        if self.shifted and isinstance(Xc, CSR):                   # shifted by an earlier dense chunk
            Xc = Xc.to_dense()
        if self.shifted:
            if self._buf is None or m > self._buf.shape[0]:
                self._buf = torch.empty_like(Xc)
            Xc = torch.sub(Xc, self.shift_x, out=self._buf[:m])   # (m, d)
        ones = Yt.new_ones(1, m) if w is None else w.to(torch.float64)[None, :]
        Vt = torch.cat([Yt - self.shift_y[:, None], ones])         # [Y - t, 1]ᵀ (k+1, m), or [w(Y - t), w]ᵀ
        if w is None:
            self.n += m
            if isinstance(Xc, CSR):
                self.sxx += gram(Xc)                               # formed sparsely
            else:
                self.sxx.addmm_(Xc.T, Xc)                          # the one big product
        else:
            Vt[:k] *= ones
            self.n += float(ones.sum())
            if isinstance(Xc, CSR):
                self.sxx += gram(Xc, ones[0])
            else:
                self.sxx.addmm_(Xc.T * ones, Xc)                   # Xᵀ diag(w) X
        VX = gt_x(Vt, Xc)                                              # (k+1, d): Σ (w) y xᵀ and Σ (w) x
        self.sxy += VX[:k].T                                       #   (this orientation is 1.5×
        self.sx += VX[k]                                           #    faster than Xᵀ V)
        self.sy += Vt[:k].sum(dim=1)
        if w is None:
            self.syy.addmm_(Vt[:k], Vt[:k].T)
        else:
            self.syy.addmm_(Vt[:k], (Yt - self.shift_y[:, None]).T)

    def reduced(self, comm) -> "MomentAccumulator":
        """The sums over every rank (a copy; ``self`` keeps this rank's own)."""
        if comm.world_size == 1:
            return self
        out = MomentAccumulator()
        out.shift_x, out.shift_y = self.shift_x, self.shift_y
        n = torch.tensor([float(self.n)], dtype=torch.float64, device=self.sx.device)
        sums = [getattr(self, name).clone() for name in self.SUMS]
        comm.sum_(n, *sums)
        out.n = float(n)
        for name, t in zip(self.SUMS, sums):
            setattr(out, name, t)
        return out

    def is_finite(self) -> bool:
        return all(bool(torch.isfinite(getattr(self, name)).all()) for name in ("sx", "sy", "sxx", "sxy"))

    def moments(self, centred: bool = True) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(x̄ (d,), ȳ (k,), C (d, d), c (d, k)): the centred moments, or with ``centred=False`` the
        raw second moments E[xxᵀ], E[xyᵀ] (a model without intercept)."""
        mx, my = self.sx / self.n, self.sy / self.n            # means of the shifted data
        C = self.sxx / self.n - torch.outer(mx, mx)
        c = self.sxy / self.n - torch.outer(mx, my)
        mean_x, mean_y = mx + self.shift_x, my + self.shift_y
        if not centred:
            C, c = C + torch.outer(mean_x, mean_x), c + torch.outer(mean_x, mean_y)
        return mean_x, mean_y, C, c

    def loss(self, W: Tensor, lam: float, centred: bool = True) -> float:
        r"""F at W (and the least-squares intercept, or b = 0), from the moments (no pass over the
        data): ½ tr(C_yy - 2 Wᵀc + WᵀCW) + (λ/2)||W||²."""
        _, mean_y, C, c = self.moments(centred)
        my = self.sy / self.n
        Cyy = self.syy / self.n - torch.outer(my, my)
        if not centred:
            Cyy = Cyy + torch.outer(mean_y, mean_y)
        F = 0.5 * float(torch.trace(Cyy) - 2 * (W * c).sum() + (W * (C @ W)).sum())
        return max(F, 0.0) + 0.5 * lam * float(W.square().sum())

    def state_dict(self) -> dict[str, Tensor]:
        if self.shift_x is None:
            return {}
        state = {name: getattr(self, name) for name in self.SUMS}
        return {**state, "n": torch.tensor([float(self.n)], dtype=torch.float64),
                "shift_x": self.shift_x, "shift_y": self.shift_y}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if "n" not in state:
            return
        self.n = float(state["n"][0])
        self.shift_x, self.shift_y = state["shift_x"].double().clone(), state["shift_y"].double().clone()
        for name in self.SUMS:
            setattr(self, name, state[name].double().clone())


def solve_ridge(C: Tensor, c: Tensor, lam: float) -> tuple[Tensor, bool]:
    """Solve (C + λI) W = c by Cholesky; returns (W, used_fallback). float64 in and out.
    Falls back when Cholesky fails or :func:`condition_estimate` exceeds ``COND_LIMIT``."""
    A = C + lam * torch.eye(C.shape[0], dtype=C.dtype, device=C.device)
    L, info = torch.linalg.cholesky_ex(A)
    if int(info) == 0 and condition_estimate(A, L) <= COND_LIMIT:
        return torch.cholesky_solve(c, L), False
    return None, True


def condition_estimate(A: Tensor, L: Tensor) -> float:
    r"""cond₁ of A after Jacobi scaling, S = D^{-½} A D^{-½} (D = diag A; the scaling Cholesky's
    accuracy does not depend on), from LAPACK's reciprocal condition estimate ``dpocon`` on S's
    Cholesky factor D^{-½} L — O(d²) on the factor already computed, and within a small factor of
    the true condition number, where (max Lᵢᵢ / min Lᵢᵢ)² can be 10²–10³ below it for a rotated
    spectrum."""
    diag = A.diagonal()
    if not bool((diag > 0).all()):
        return math.inf
    s = diag.rsqrt()
    S = A * s[:, None] * s[None, :]
    anorm = float(S.abs().sum(dim=0).max())
    rcond, info = lapack.dpocon((L * s[:, None]).cpu().numpy(), anorm, uplo="L")
    return math.inf if info != 0 or rcond <= 0 else 1.0 / rcond


class Exact(Solver):
    name = "exact"
    squared_only = True
    checks_finite = True            # NaN/Inf in X or y make the moments non-finite: checked below

    def init(self, d, k, dtype, device) -> None:
        self.acc = MomentAccumulator()

    def state_dict(self) -> dict:
        return self.acc.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.acc.load_state_dict(state)

    def iterate(self, fb: FullBatch, params: Params, guard: DivergenceGuard, epoch: int) -> EpochStats:
        d, k = fb.d, fb.k
        memory.require(8 * (4 * d * d + 3 * d * (k + 1)), f"the closed form of {d} features (XᵀX, {d}×{d} in float64)",
                       "use solver='lbfgs' or 'sgd', which need memory linear in the features")
        earlier = self.acc.n                                   # rows from earlier calls (partial_fit)
        acc = copy.deepcopy(self.acc)                          # committed only when finite: bad rows
        for block in fb.source.chunks():                       # never poison the moments kept
            acc.add(block.X, block.T, fb.comm, block.w)
        total = acc.reduced(fb.comm)
        if not total.is_finite():
            raise DataError(fb.source.bad_values() or "Input y contains NaN or infinity (or values too large to "
                            "square in float64); remove or impute them before fitting")
        self.acc = acc
        intercept = fb.objective.fit_intercept
        mean_x, mean_y, C, c = total.moments(centred=intercept)
        lam = fb.objective.weight_decay
        W, fallback = solve_ridge(C, c, lam)
        if fallback:
            warnings.warn("the normal equations are ill-conditioned or singular; solving by "
                          "least squares and returning the minimum-norm solution",
                          IllConditionedWarning, stacklevel=5)
            if earlier:                                        # earlier rows are gone: SVD of the moments
                A = C + lam * torch.eye(C.shape[0], dtype=C.dtype, device=C.device)
                W = torch.linalg.pinv(A, rtol=1e-12, hermitian=True) @ c
            else:
                W = qr_least_squares(fb.source, fb.comm, total.shift_x, total.shift_y, lam, total.n, intercept)
        params.W.copy_(W)                                      # (d, k), from float64
        params.b.copy_(mean_y - W.T @ mean_x if intercept else torch.zeros_like(mean_y))
        value = guard.check(total.loss(W, lam, centred=intercept), params)
        return EpochStats(loss=value, samples=fb.n_total, steps=1, converged=True, extra={"fallback": fallback})


def qr_least_squares(source: DataSource, comm, shift_x: Tensor, shift_y: Tensor, lam: float,
                     n_total: float, intercept: bool = True) -> Tensor:
    r"""Least squares by a streamed QR (a second pass; accurate when the normal equations are not).

    R is the triangular factor of A = [1, X - s, Y - t] (n × (1+d+k)), accumulated as
    R ← qr([R; A_chunk]).R. Its block R_xx is the R factor of the *centred* X (the first
    Householder step removes the mean), so W = argmin ||R_xx W - R_xy|| solves the
    centred problem with cond(X), not cond(X)², and the SVD-based solve (gelsd) returns
    the minimum-norm W when X is rank-deficient. weight_decay adds rows √(nλ)·I for W; sample
    weights scale each row of A by √w (n is then Σ w). Without an intercept, A = [0, X, Y]: no
    centring, no shift.
    """
    d, k = source.d, source.k
    if not intercept:
        shift_x, shift_y = torch.zeros_like(shift_x), torch.zeros_like(shift_y)
    R = None
    for block in source.chunks():
        for s, Xc in dense_pieces(block.X.to(torch.float64)):       # sparse rows: ~4 MiB dense pieces
            Yc = block.T.to(torch.float64).T[s:s + Xc.shape[0]]
            first = Xc.new_ones(Xc.shape[0], 1) if intercept else Xc.new_zeros(Xc.shape[0], 1)
            A = torch.cat([first, Xc - shift_x, Yc - shift_y], dim=1)
            if block.w is not None:
                A *= block.w[s:s + Xc.shape[0]].to(torch.float64).sqrt()[:, None]
            R = torch.linalg.qr(A if R is None else torch.cat([R, A]), mode="r").R
    if comm.world_size > 1:                              # stack the ranks' R factors, factor again
        R = R if R is not None else torch.zeros(0, 1 + d + k, dtype=torch.float64, device=source.device)
        R = torch.linalg.qr(torch.cat(comm.all_gather(_square(R, 1 + d + k))), mode="r").R
    if lam:
        ridge = R.new_zeros(d, 1 + d + k)
        ridge[:, 1:1 + d] = (n_total * lam) ** 0.5 * torch.eye(d, dtype=R.dtype, device=R.device)
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
