"""Solvers behind one interface, looked up by name (no if-chains): see :mod:`.base`."""

from __future__ import annotations

from ..errors import ConfigError
from .base import DivergenceGuard, EpochStats, Solver, SolverConfig, learning_rate
from .exact import Exact
from .lbfgs import LBFGS
from .newton import Newton, NewtonCG
from .sgd import GD, SGD

SOLVERS: dict[str, type[Solver]] = {cls.name: cls for cls in (Exact, GD, SGD, Newton, NewtonCG, LBFGS)}

#: solvers that work in float64 by default (second order and the closed form)
FLOAT64_SOLVERS = frozenset({"exact", "newton", "newton-cg", "lbfgs"})


def get_solver(name: str) -> type[Solver]:
    try:
        return SOLVERS[name]
    except KeyError:
        raise ConfigError(f"unknown solver {name!r}; choose one of {', '.join(SOLVERS)}") from None


__all__ = ["SOLVERS", "FLOAT64_SOLVERS", "get_solver", "Solver", "SolverConfig", "EpochStats",
           "DivergenceGuard", "learning_rate"]
