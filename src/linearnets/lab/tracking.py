"""Helpers that run the library's solvers through its public API and record what they do."""

from __future__ import annotations

import numpy as np
import torch

from ..data import InMemory, Targets
from ..errors import DivergenceError
from ..losses import get_loss
from ..metrics import evaluate
from ..objective import FullBatch, Objective
from ..params import Params
from ..solvers import SolverConfig, get_solver
from ..train import Callback, TrainState, train
from .base import Stopwatch


def problem_from(X, y=None, *, loss="cross_entropy", Y=None, weight_decay=0.0, dtype=torch.float64,
                 k=None) -> FullBatch:
    """F over NumPy data (a :class:`~linearnets.objective.FullBatch` of an in-memory source): class
    labels 0..k-1, soft targets ``Y`` (n, k), or regression values ``y``."""
    loss_obj = get_loss(loss)
    if Y is not None:
        targets, y = Targets("classification", Y.shape[1], np.arange(Y.shape[1])), np.asarray(Y)
    elif loss_obj.classification:
        targets = Targets.for_classes(np.arange(k or int(np.max(y)) + 1))
    else:
        y = np.asarray(y, dtype=np.float64)
        targets = Targets("regression", 1 if y.ndim == 1 else y.shape[1])
    source = InMemory.from_arrays(np.asarray(X), y, targets, dtype=dtype)
    return FullBatch(Objective(loss_obj, weight_decay), source)


def subset(problem: FullBatch, rows: int) -> FullBatch:
    """The same problem over its first ``rows`` rows."""
    return FullBatch(problem.objective, problem.source.rows(torch.arange(min(rows, problem.n_total))))


class Track(Callback):
    """Records (seconds, F on ``problem``) after every epoch; evaluation time is excluded."""

    def __init__(self, problem: FullBatch, extra: FullBatch | None = None, stop_below: float | None = None):
        self.problem, self.extra, self.stop_below = problem, extra, stop_below
        self.clock = Stopwatch()
        self.seconds, self.values, self.extra_acc, self.train_acc = [], [], [], []

    def on_epoch(self, state, record):
        t = self.clock()
        with self.clock.paused():
            self.seconds.append(t)
            self.values.append(float(self.problem.value(state.params)))
            if self.extra is not None:
                self.extra_acc.append(accuracy(self.extra, state.params))
                self.train_acc.append(accuracy(self.problem, state.params))
        return self.stop_below is not None and self.values[-1] <= self.stop_below


def accuracy(problem: FullBatch, params: Params) -> float:
    return evaluate(problem.objective, params, problem.source)["accuracy"]


def run_solver(problem: FullBatch, solver: str, *, epochs: int, params: Params | None = None,
               callbacks=(), **settings):
    """Train with a named solver from ``params`` (zeros by default; updated in place);
    returns (params, history, diverged: bool)."""
    state = TrainState(params if params is not None else Params.zeros(problem.d, problem.k, dtype=problem.dtype))
    cfg = SolverConfig(epochs=epochs, **settings)
    try:
        train(problem.source, problem.objective, get_solver(solver)(cfg), state, epochs=epochs,
              callbacks=list(callbacks), warn_unconverged=False)     # the lab's budgets are deliberate
        return state.params, state.history, False
    except DivergenceError:
        return state.params, None, True


def logits(model, X) -> np.ndarray:
    """A fitted SoftmaxRegression's logits (n, k) through its public API (``decision_function``;
    for two classes, whose log-odds it returns, the equivalent logits [0, z₁ − z₀])."""
    Z = model.decision_function(X)
    return np.column_stack([np.zeros_like(Z), Z]) if Z.ndim == 1 else Z
