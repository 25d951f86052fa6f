"""What every solver shares: its settings, its per-epoch report, and the divergence guard.

A solver is a small object with two methods::

    init(problem, params)                  -> None       (allocate state)
    epoch(problem, params, epoch, guard)   -> EpochStats (update params in place)

For minibatch solvers an epoch is one pass over reshuffled minibatches; for
full-batch solvers it is one iteration (one step). The training loop
(:func:`linearnets.train.train`) never needs to know which kind it runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..errors import ConfigError, DivergenceError
from ..objective import Problem
from ..params import Params

__all__ = ["SolverConfig", "EpochStats", "DivergenceGuard", "Solver", "learning_rate"]

SCHEDULES = ("constant", "step", "cosine")


@dataclass(frozen=True)
class SolverConfig:
    lr: float = 0.1                # step size of gd/sgd
    batch_size: int = 256          # minibatch size of sgd
    momentum: float = 0.0          # heavy-ball momentum of gd/sgd (PyTorch's convention)
    lr_schedule: str = "constant"  # constant | step (×0.1 at 1/3 and 2/3 of epochs) | cosine
    epochs: int = 10               # total epochs, for the schedules
    tol: float = 1e-6              # full-batch solvers stop when max|∇F| ≤ tol
    damping: float = 1e-10         # Newton: initial Levenberg damping, relative to mean diag(H)
    history_size: int = 10         # L-BFGS memory
    seed: int = 0

    def __post_init__(self):
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"Invalid learning rate: {self.lr}; use a positive number such as 0.1")
        if int(self.batch_size) != self.batch_size or self.batch_size < 1:
            raise ConfigError(f"Invalid batch_size: {self.batch_size}; use a positive integer")
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"Invalid momentum: {self.momentum}; use a value in [0, 1)")
        if self.lr_schedule not in SCHEDULES:
            raise ConfigError(f"Invalid lr_schedule: {self.lr_schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if int(self.epochs) != self.epochs or self.epochs < 1:
            raise ConfigError(f"Invalid epochs: {self.epochs}; use a positive integer")
        if not self.tol >= 0:
            raise ConfigError(f"Invalid tol: {self.tol}; use a non-negative number")


def learning_rate(config: SolverConfig, epoch: int) -> float:
    r"""The learning rate of epoch ``e`` (0-based) of ``E``.

    constant: lr;  step: lr · 0.1^⌊3e/E⌋;  cosine: lr · ½(1 + cos(π e / E)).
    """
    E = config.epochs
    if config.lr_schedule == "step":
        return config.lr * 0.1 ** min(2, (3 * epoch) // E)
    if config.lr_schedule == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / E))
    return config.lr


@dataclass
class EpochStats:
    loss: float                      # minibatch: mean of the batch losses seen; full batch: F after the step
    samples: int                     # samples processed in the epoch
    steps: int                       # parameter updates made
    accuracy: float | None = None    # classification: fraction of argmax hits on the batches seen
    lr: float | None = None
    grad_max: float | None = None    # full batch: max|∇F| before the step
    converged: bool = False
    extra: dict = field(default_factory=dict)


class DivergenceGuard:
    """Stops training at once on a non-finite or exploding loss.

    Call :meth:`check` with the loss computed *at the current parameters*, before the
    update. Given ``params``, it remembers them as the last good ones; when a loss is NaN,
    ±Inf or larger than ``factor`` × the first loss, it restores them and raises
    :class:`~linearnets.DivergenceError` naming the learning rate. A solver that keeps its
    own copy of the previous parameters (SGD's double buffer) passes ``params=None`` and
    restores them itself.
    """

    def __init__(self, params: Params, lr: float | None, *, factor: float = 1e6):
        self.last_good = params.clone()
        self.lr, self.factor = lr, factor
        self.limit: float | None = None
        self.epoch = 0
        self.step = 0

    def check(self, loss: Tensor | float, params: Params | None) -> float:
        value = float(loss)
        self.step += 1
        if self.limit is None and math.isfinite(value):
            self.limit = self.factor * max(abs(value), 1e-3)
        if not math.isfinite(value) or (self.limit is not None and value > self.limit):
            if params is not None:
                params.copy_(self.last_good)
            what = "non-finite" if not math.isfinite(value) else f"exploding ({value:.3g})"
            hint = (f"with lr={self.lr:g}; try a smaller learning rate, e.g. lr={self.lr / 10:g}"
                    if self.lr is not None else "; check the data scale or add weight_decay")
            raise DivergenceError(
                f"training diverged: {what} loss at epoch {self.epoch + 1}, step {self.step} {hint}",
                lr=self.lr, epoch=self.epoch + 1, step=self.step, loss=value)
        if params is not None:
            self.last_good.copy_(params)
        return value


class Solver:
    """Base class; subclasses set ``name`` and implement ``init`` and ``epoch``."""

    name: str = "solver"
    minibatch: bool = False          # True: an epoch is a pass over minibatches
    uses_lr: bool = False            # True: the learning rate matters (named in divergence errors)
    squared_only: bool = False       # True: only for the squared loss (closed form)
    checks_finite: bool = False      # True: raises DataError on NaN/Inf input during its own pass

    def __init__(self, config: SolverConfig):
        self.config = config
        self.checkpointer = None         # set by train(): writes checkpoints between steps
        self._resume: tuple[int, int, dict] | None = None

    def init(self, problem: Problem, params: Params) -> None:  # pragma: no cover - default
        pass

    # checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Tensor]:
        """The solver's state between steps (momentum, curvature pairs) as named tensors."""
        return {}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        pass

    def resume_at(self, epoch: int, step: int, partial: dict) -> None:
        """Continue epoch ``epoch`` after its first ``step`` steps, with its sums so far."""
        self._resume = (epoch, step, partial) if step else None

    def take_resume(self, epoch: int) -> tuple[int, dict]:
        """(steps to skip, partial sums) for this epoch — (0, {}) unless resuming inside it."""
        if self._resume is not None and self._resume[0] == epoch:
            _, step, partial = self._resume
            self._resume = None
            return step, partial
        return 0, {}

    def epoch(self, problem: Problem, params: Params, epoch: int, guard: DivergenceGuard) -> EpochStats:
        raise NotImplementedError


def grad_max(gW: Tensor, gb: Tensor) -> float:
    return float(torch.maximum(gW.abs().max(), gb.abs().max()))


