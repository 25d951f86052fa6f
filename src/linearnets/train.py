"""The training loop: epochs of solver steps → a history; callbacks; no printing.

    history = train(problem, params, solver, epochs=10, callbacks=[...])

Each epoch asks the solver for one :class:`~linearnets.solvers.EpochStats` and turns
it into a record ``{"epoch", "loss", "accuracy", "seconds", "samples_per_s", "lr", ...}``.
Callbacks see every record and may add to it (evaluation) or stop training (early
stopping, convergence). A :class:`~linearnets.solvers.DivergenceGuard` watches every
loss the solver computes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence


from .objective import Problem
from .params import Params
from .solvers import DivergenceGuard, Solver

__all__ = ["train", "History", "Callback", "Evaluate", "EarlyStopping"]


class History(list):
    """A list of per-epoch records (dicts), with a couple of conveniences."""

    def column(self, key: str) -> list:
        return [r.get(key) for r in self]

    @property
    def last(self) -> dict:
        return self[-1] if self else {}


class Callback:
    """Hooks of the loop. ``on_epoch_end`` may return True to stop training."""

    def on_train_begin(self, epochs: int) -> None:
        pass

    def on_epoch_end(self, record: dict, params: Params) -> bool | None:
        return None

    def on_train_end(self, history: History) -> None:
        pass


class Evaluate(Callback):
    """Adds ``{prefix}loss`` (and ``{prefix}accuracy`` for classification) on other data."""

    def __init__(self, problem: Problem, prefix: str = "val_"):
        self.problem, self.prefix = problem, prefix

    def on_epoch_end(self, record, params):
        if self.problem.loss.classification:
            F, acc = self.problem.value_and_accuracy(params)
            record[self.prefix + "accuracy"] = acc
        else:
            F = self.problem.value(params)
        record[self.prefix + "loss"] = float(F)


class EarlyStopping(Callback):
    """Stops when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs,
    and restores the best parameters seen."""

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0):
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.best = math.inf
        self.best_params: Params | None = None
        self.wait = 0

    def on_epoch_end(self, record, params):
        value = record.get(self.monitor)
        if value is None:
            return None
        if value < self.best - self.min_delta:
            self.best, self.wait = value, 0
            self.best_params = params.clone()
            return None
        self.wait += 1
        if self.wait >= self.patience:
            if self.best_params is not None:
                params.copy_(self.best_params)
            record["stopped_early"] = True
            return True
        return None


def train(problem: Problem, params: Params, solver: Solver, *, epochs: int,
          callbacks: Sequence[Callback] = (), start_epoch: int = 0, init: bool = True,
          checkpointer=None, resume=None) -> History:
    """Run up to ``epochs`` epochs of ``solver`` on ``problem``, updating ``params`` in place.

    Raises :class:`~linearnets.DivergenceError` at the first non-finite or exploding
    loss; ``params`` then hold the last parameters whose loss was finite.
    ``start_epoch``/``init=False`` continue an earlier run (``partial_fit``).
    ``checkpointer`` (:class:`~linearnets.checkpoint.Checkpointer`) writes a checkpoint
    after every epoch and, for minibatch solvers, every ``every_steps`` steps;
    ``resume`` (a :class:`~linearnets.checkpoint.Checkpoint`) continues from one — the
    returned history then holds only the epochs run by this call.
    """
    if solver.squared_only and problem.loss.classification:
        from .errors import ConfigError
        raise ConfigError(f"solver {solver.name!r} is the closed form of the squared loss; "
                          f"use sgd, gd, newton, newton-cg or lbfgs for {problem.loss.name}")
    history = History()
    if init:
        solver.init(problem, params)
    if resume is not None:
        params.copy_(resume.params)
        solver.load_state_dict(resume.solver_state)
        solver.resume_at(resume.epoch, resume.step, resume.partial)
        start_epoch = resume.epoch
    guard = DivergenceGuard(params, solver.config.lr if solver.uses_lr else None)
    if resume is not None and resume.guard_limit is not None:
        guard.limit = resume.guard_limit
    solver.checkpointer = checkpointer
    if checkpointer is not None:
        checkpointer.guard = guard
        if resume is not None:
            checkpointer.history = list(resume.history)
    for cb in callbacks:
        cb.on_train_begin(epochs - start_epoch)
    try:
        _loop(problem, params, solver, guard, history, callbacks, start_epoch, epochs, checkpointer)
    finally:
        solver.checkpointer = None
        for cb in callbacks:
            cb.on_train_end(history)
    return history


def _loop(problem, params, solver, guard, history, callbacks, start_epoch, epochs, checkpointer):
    for epoch in range(start_epoch, epochs):
        guard.epoch = epoch
        t0 = time.perf_counter()
        stats = solver.epoch(problem, params, epoch, guard)
        seconds = time.perf_counter() - t0
        record = {"epoch": epoch + 1, "loss": stats.loss, "seconds": seconds,
                  "samples_per_s": stats.samples / seconds if seconds > 0 else float("inf"),
                  "steps": stats.steps}
        if stats.accuracy is not None:
            record["accuracy"] = stats.accuracy
        if stats.lr is not None:
            record["lr"] = stats.lr
        if stats.grad_max is not None:
            record["grad_max"] = stats.grad_max
        record.update(stats.extra)
        if stats.converged and stats.steps == 0 and history:
            # a convergence check that took no step is not an epoch of its own
            history.last["converged"] = True
            break
        history.append(record)
        stop = stats.converged
        for cb in callbacks:
            stop = bool(cb.on_epoch_end(record, params)) or stop
        if stats.converged:
            record["converged"] = True
        if checkpointer is not None:
            checkpointer.history.append(record)
            checkpointer.save(epoch=epoch + 1, step=0, params=params, solver_state=solver.state_dict())
        if stop:
            break
