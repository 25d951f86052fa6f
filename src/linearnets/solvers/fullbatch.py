r"""Shared machinery of the full-batch descent solvers (Newton, Newton-CG, L-BFGS).

One iteration per epoch: take the gradient g at θ, compute a direction δ (the
solver's job), then backtrack t = 1, ½, ¼, … until the Armijo condition

    F(θ + t δ) ≤ F(θ) + c · t · gᵀδ          (c = 1e-4)

holds. The accepted point's value and gradient are kept for the next iteration, so an
iteration whose first trial step is accepted costs one gradient evaluation.

Solvers that are not invariant to linear changes of variables (L-BFGS, Newton-CG) iterate
in *centred* coordinates (W, c) with c = b + Wᵀx̄ — the same objective (the intercept
absorbs the feature means exactly), far better conditioned when features have non-zero
means (pixels: L-BFGS needs 28 iterations instead of 107 on the reference workload).
No centred copy of X is made: :class:`Centred` maps parameters, gradients and
Hessian-vector products through the change of variables.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..objective import FullBatch
from ..params import Params
from .base import DivergenceGuard, EpochStats, Solver, grad_max

ARMIJO_C = 1e-4
MAX_HALVINGS = 40


def flat(gW: Tensor, gb: Tensor) -> Tensor:
    """(∇_W, ∇_b) → vec([∇_W; ∇_b]), the layout of :meth:`Params.flat`."""
    return torch.cat([gW, gb[None, :]], dim=0).reshape(-1)


def unflat(v: Tensor, d: int, k: int) -> tuple[Tensor, Tensor]:
    Vb = v.reshape(d + 1, k)
    return Vb[:-1], Vb[-1]


class Centred:
    r"""A :class:`~linearnets.objective.FullBatch` in the coordinates (W, c), c = b + Wᵀx̄ (x̄ the
    feature means).

    With J: (W, c) ↦ (W, b = c - Wᵀx̄):  F' = F∘J,  ∇F' = Jᵀ∇F = (∇_W F - x̄ ∇_b Fᵀ, ∇_b F),
    ∇²F' v = Jᵀ ∇²F J v. Same interface as :class:`~linearnets.objective.FullBatch`.
    """

    def __init__(self, problem: FullBatch):
        self.problem = problem
        self.mean = problem.feature_mean()                                    # x̄ (d,)

    n_total = property(lambda self: self.problem.n_total)
    mass = property(lambda self: self.problem.mass)
    d = property(lambda self: self.problem.d)
    k = property(lambda self: self.problem.k)

    def to_real(self, p: Params) -> Params:
        return Params(p.W, p.b - p.W.T @ self.mean)

    def from_real(self, p: Params) -> Params:
        return Params(p.W.clone(), p.b + p.W.T @ self.mean)

    def value(self, p: Params) -> Tensor:
        return self.problem.value(self.to_real(p))

    def value_and_grad(self, p: Params):
        F, gW, gb = self.problem.value_and_grad(self.to_real(p))
        return F, gW - torch.outer(self.mean, gb), gb

    def hvp(self, p: Params, VW: Tensor, Vc: Tensor):
        HW, Hb = self.problem.hvp(self.to_real(p), VW, Vc - VW.T @ self.mean)
        return HW - torch.outer(self.mean, Hb), Hb


class FullBatchSolver(Solver):
    centred = False                  # iterate in the centred coordinates of :class:`Centred`

    def init(self, d, k, dtype, device) -> None:
        self._cache = None           # (problem, F, gW, gb) at the current params
        self._space = None           # (problem, Centred(problem))
        self._work = None            # (real params last written, params in solver coordinates)

    def _coordinates(self, problem: FullBatch, params: Params):
        """The space the solver iterates in and the current point in it."""
        if not self.centred or not problem.objective.fit_intercept:       # b fixed at 0: no change of b
            return problem, params
        if self._space is None or self._space[0] is not problem:
            self._space = (problem, Centred(problem))
            self._work = None
        space = self._space[1]
        if self._work is None or not (torch.equal(self._work[0].W, params.W)
                                      and torch.equal(self._work[0].b, params.b)):
            self._work = (params.clone(), space.from_real(params))   # (re)sync after outside changes
        return space, self._work[1]

    def direction(self, problem: FullBatch, params: Params, g: Tensor) -> Tensor:
        raise NotImplementedError

    def after_step(self, s: Tensor, g_old: Tensor, g_new: Tensor) -> None:
        """Hook for quasi-Newton memory: s = θ_new - θ_old."""

    def iterate(self, problem: FullBatch, params: Params, guard: DivergenceGuard, epoch: int) -> EpochStats:
        space, work = self._coordinates(problem, params)
        try:
            return self._iterate(space, work, guard)
        finally:
            if work is not params:                        # write the point back in (W, b)
                params.copy_(space.to_real(work))
                self._work = (params.clone(), work)

    def _iterate(self, problem, params: Params, guard: DivergenceGuard) -> EpochStats:
        cached = self._cache is not None and self._cache[0] is problem
        F, gW, gb = self._cache[1:] if cached else problem.value_and_grad(params)
        # no snapshot needed: the line search never accepts a point with a non-finite value, so
        # only the starting point can fail here, and there is nothing earlier to go back to
        value = guard.check(F, None)
        gmax = grad_max(gW, gb)
        if gmax <= self.config.tol:
            return EpochStats(loss=value, samples=problem.n_total, steps=0, grad_max=gmax, converged=True)
        g = flat(gW, gb)
        delta = self.direction(problem, params, g)
        slope = float(g @ delta)
        if not slope < 0:                                 # not a descent direction: fall back
            delta, slope = -g, -float(g @ g)
        theta0 = params.flat()
        t, accepted = 1.0, False
        for _ in range(MAX_HALVINGS):
            params.set_flat(theta0 + t * delta)
            F_new, gW_new, gb_new = problem.value_and_grad(params)
            f = float(F_new)
            # the small slack accepts steps that change F only at rounding level near the optimum
            if f <= value + ARMIJO_C * t * slope + 1e-15 * abs(value):
                accepted = True
                break
            t *= 0.5
        if not accepted:                                  # no decrease possible: not "converged" (gmax > tol)
            params.set_flat(theta0)
            self._cache = (problem, F, gW, gb)
            return EpochStats(loss=value, samples=problem.n_total, steps=0, grad_max=gmax, extra={"stalled": True})
        self._cache = (problem, F_new, gW_new, gb_new)
        self.after_step(t * delta, g, flat(gW_new, gb_new))
        extra = {"step_size": t}
        if self.no_progress(value, f, params.W.dtype):
            extra["stalled"] = True
        return EpochStats(loss=f, samples=problem.n_total, steps=1, grad_max=gmax, extra=extra)
