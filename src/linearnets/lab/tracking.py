"""Helpers that run the library's solvers and record the objective as they go."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import DivergenceError
from ..losses import get_loss, one_hot
from ..objective import Problem
from ..params import Params
from ..solvers import SolverConfig, get_solver
from ..train import Callback, train
from .base import Stopwatch


def problem_from(X, y=None, *, loss="cross_entropy", Y=None, weight_decay=0.0, dtype=torch.float64,
                 k=None) -> Problem:
    """A Problem from NumPy data: class labels (one-hot), soft targets ``Y``, or regression y."""
    loss_obj = get_loss(loss)
    Xt = torch.as_tensor(np.asarray(X), dtype=dtype)
    if Y is not None:
        Yt = torch.as_tensor(np.asarray(Y), dtype=dtype)
    elif loss_obj.classification:
        Yt = one_hot(torch.as_tensor(np.asarray(y)), k or int(np.max(y)) + 1, dtype)
    else:
        Yt = torch.as_tensor(np.asarray(y), dtype=dtype).reshape(len(y), -1)
    return Problem(Xt, Yt, loss_obj, weight_decay)


class Track(Callback):
    """Records (seconds, F on ``problem``) after every epoch; evaluation time is excluded."""

    def __init__(self, problem: Problem, extra: Problem | None = None, stop_below: float | None = None):
        self.problem, self.extra, self.stop_below = problem, extra, stop_below
        self.clock = Stopwatch()
        self.seconds, self.values, self.extra_acc, self.train_acc = [], [], [], []

    def on_epoch_end(self, record, params):
        t = self.clock()
        with self.clock.paused():
            self.seconds.append(t)
            self.values.append(float(self.problem.value(params)))
            if self.extra is not None:
                self.extra_acc.append(accuracy(self.extra, params))
                self.train_acc.append(accuracy(self.problem, params))
        return self.stop_below is not None and self.values[-1] <= self.stop_below


def accuracy(problem: Problem, params: Params) -> float:
    return problem.value_and_accuracy(params)[1]


def run_solver(problem: Problem, solver: str, *, epochs: int, params: Params | None = None,
               callbacks=(), **settings):
    """Train with a named solver; returns (params, history, diverged: bool)."""
    params = params or Params.zeros(problem.d, problem.k, dtype=problem.dtype)
    cfg = SolverConfig(epochs=epochs, **settings)
    try:
        history = train(problem, params, get_solver(solver)(cfg), epochs=epochs, callbacks=list(callbacks))
        return params, history, False
    except DivergenceError:
        return params, None, True
