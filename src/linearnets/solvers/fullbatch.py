r"""Shared machinery of the full-batch descent solvers (Newton, Newton-CG, L-BFGS).

One iteration per epoch: take the gradient g at θ, compute a direction δ (the
solver's job), then backtrack t = 1, ½, ¼, … until the Armijo condition

    F(θ + t δ) ≤ F(θ) + c · t · gᵀδ          (c = 1e-4)

holds. The accepted point's value and gradient are kept for the next iteration, so an
iteration whose first trial step is accepted costs one gradient evaluation.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..objective import Problem
from ..params import Params
from .base import DivergenceGuard, EpochStats, Solver

ARMIJO_C = 1e-4
MAX_HALVINGS = 40


def flat(gW: Tensor, gb: Tensor) -> Tensor:
    """(∇_W, ∇_b) → vec([∇_W; ∇_b]), the layout of :meth:`Params.flat`."""
    return torch.cat([gW, gb[None, :]], dim=0).reshape(-1)


def unflat(v: Tensor, d: int, k: int) -> tuple[Tensor, Tensor]:
    Vb = v.reshape(d + 1, k)
    return Vb[:-1], Vb[-1]


class FullBatchSolver(Solver):
    def init(self, problem: Problem, params: Params) -> None:
        self._cache = None           # (problem, F, gW, gb) at the current params

    def direction(self, problem: Problem, params: Params, g: Tensor) -> Tensor:
        raise NotImplementedError

    def after_step(self, s: Tensor, g_old: Tensor, g_new: Tensor) -> None:
        """Hook for quasi-Newton memory: s = θ_new - θ_old."""

    def epoch(self, problem: Problem, params: Params, epoch: int, guard: DivergenceGuard) -> EpochStats:
        cached = self._cache is not None and self._cache[0] is problem
        F, gW, gb = self._cache[1:] if cached else problem.value_and_grad(params)
        value = guard.check(F, params)
        gmax = float(torch.maximum(gW.abs().max(), gb.abs().max()))
        if gmax <= self.config.tol:
            return EpochStats(loss=value, samples=problem.n, steps=0, grad_max=gmax, converged=True)
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
        if not accepted:                                  # no decrease possible: at the optimum
            params.set_flat(theta0)
            self._cache = (problem, F, gW, gb)
            return EpochStats(loss=value, samples=problem.n, steps=0, grad_max=gmax, converged=True)
        self._cache = (problem, F_new, gW_new, gb_new)
        self.after_step(t * delta, g, flat(gW_new, gb_new))
        return EpochStats(loss=f, samples=problem.n, steps=1, grad_max=gmax, extra={"step_size": t})
