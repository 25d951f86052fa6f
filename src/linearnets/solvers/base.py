"""What every solver shares: its settings, its per-epoch report, the divergence guard, the interface.

Two kinds of solver, one interface the training loop (:func:`linearnets.train.train`) drives::

    init(d, k, dtype, device)          allocate the state (momentum, curvature pairs, moments)
    state_dict() / load_state_dict()   that state as named tensors (checkpoints, partial_fit)

* minibatch (``minibatch = True``, SGD): ``update(cur, out, lr, weight_decay, Gt, X, grad)`` — one
  step, a small functional update; the loop owns the batches, the reduction over ranks, the
  guard, the events and the checkpoints;
* full batch (GD, Newton, Newton-CG, L-BFGS, the closed form): ``iterate(full_batch, params,
  guard, epoch) -> EpochStats`` — one iteration over all rows
  (:class:`~linearnets.objective.FullBatch`), updating ``params`` in place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .. import settings
from ..errors import DivergenceError
from ..params import Params

__all__ = ["SolverConfig", "EpochStats", "DivergenceGuard", "Solver", "learning_rate"]

SCHEDULES = ("constant", "step", "cosine", "anneal")


@dataclass(frozen=True)
class SolverConfig:
    lr: float = 0.1                # step size of gd/sgd
    batch_size: int = 256          # minibatch size of sgd
    momentum: float = 0.0          # heavy-ball momentum of gd/sgd (PyTorch's convention)
    lr_schedule: str = "constant"  # constant | step (×0.1 at 1/3 and 2/3 of epochs) | cosine | anneal
    epochs: int = 10               # total epochs, for the schedules
    tol: float = 1e-6              # full-batch solvers stop when max|∇F| ≤ tol
    damping: float = 1e-10         # Newton: initial Levenberg damping, relative to mean diag(H)
    history_size: int = 10         # L-BFGS memory
    seed: int = 0

    def __post_init__(self):
        settings.number("lr", self.lr, low_open=True, example="0.1")
        settings.integer("batch_size", self.batch_size)
        settings.number("momentum", self.momentum, high=1.0, high_open=True, example="0.9")
        settings.choice("lr_schedule", self.lr_schedule, SCHEDULES)
        settings.integer("epochs", self.epochs)
        settings.number("tol", self.tol, example="1e-6")
        settings.number("damping", self.damping)
        settings.integer("history_size", self.history_size)
        settings.seed(self.seed)


def learning_rate(config: SolverConfig, epoch: int) -> float:
    r"""The learning rate of epoch ``e`` (0-based) of ``E``.

    constant: lr;  step: lr · 0.1^⌊3e/E⌋;  cosine: lr · ½(1 + cos(π e / E));
    anneal: lr · max(1, min(D + 1, E − e))/(D + 1), D = ⌈0.3 E⌉ (0 for E = 1) — constant, then a linear
    decay over the last D epochs (E = 10: ¾, ½, ¼ of lr), and the last rate past E (more partial_fit
    calls).
    """
    E = config.epochs
    if config.lr_schedule == "step":
        return config.lr * 0.1 ** min(2, (3 * epoch) // E)
    if config.lr_schedule == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / E))
    if config.lr_schedule == "anneal":
        D = math.ceil(0.3 * E) if E > 1 else 0                   # the epochs of the decay
        return config.lr * max(1.0, min(D + 1.0, E - epoch)) / (D + 1)
    return config.lr


@dataclass
class EpochStats:
    loss: float                      # F (with the penalty): full batch after the step; minibatch: mean over steps
    samples: int                     # samples processed in the epoch
    steps: int                       # parameter updates made
    accuracy: float | None = None    # classification, minibatch: fraction of argmax hits on the batches seen
    lr: float | None = None
    grad_max: float | None = None    # full batch: max|∇F| before the step
    converged: bool = False
    extra: dict = field(default_factory=dict)
    timed_samples: int | None = None  # samples processed by this call (a resumed epoch's earlier ones left out)


class DivergenceGuard:
    """Stops training at once on a non-finite or exploding loss.

    Call :meth:`check` with the loss computed *at the current parameters*, before the update.
    Given ``params``, it remembers them as the last good ones; when a loss is NaN, ±Inf or
    larger than ``factor`` × the first finite loss (``limit``, kept across resumes), it restores
    them and raises :class:`~linearnets.DivergenceError` naming the learning rate. A caller that
    keeps its own copy of the previous parameters (SGD's double buffer) passes ``params=None``
    and restores them itself.
    """

    def __init__(self, lr: float | None, *, limit: float | None = None, factor: float = 1e6):
        self.lr, self.factor, self.limit = lr, factor, limit
        self.last_good: Params | None = None
        self.epoch = 0
        self.step = 0

    def check(self, loss: Tensor | float, params: Params | None = None) -> float:
        value = float(loss)
        self.step += 1
        if self.limit is None and math.isfinite(value):
            self.limit = self.factor * max(abs(value), 1e-3)
        if not math.isfinite(value) or (self.limit is not None and value > self.limit):
            if params is not None and self.last_good is not None:
                params.copy_(self.last_good)
            what = "non-finite" if not math.isfinite(value) else f"exploding ({value:.3g})"
            hint = (f"with lr={self.lr:g}; try a smaller learning rate, e.g. lr={self.lr / 10:g}"
                    if self.lr is not None else "; check the data scale or add weight_decay")
            raise DivergenceError(
                f"training diverged: {what} loss at epoch {self.epoch + 1}, step {self.step} {hint}",
                lr=self.lr, epoch=self.epoch + 1, step=self.step, loss=value)
        if params is not None:
            if self.last_good is None:
                self.last_good = params.clone()
            else:
                self.last_good.copy_(params)
        return value


class Solver:
    """Base class; subclasses set ``name`` and implement ``update`` (minibatch) or ``iterate``."""

    name: str = "solver"
    minibatch: bool = False          # True: an epoch is a pass over minibatches (``update``)
    uses_lr: bool = False            # True: the learning rate matters (named in divergence errors)
    squared_only: bool = False       # True: only for the squared loss (closed form)
    checks_finite: bool = False      # True: raises DataError on NaN/Inf input during its own pass
    copies: int = 10                 # buffers the size of (W, b) a run holds at its peak (solver state, the
                                     # loop's, the fitted coefficients in float64), for the memory check

    def parameter_copies(self) -> int:
        return self.copies

    def __init__(self, config: SolverConfig):
        self.config = config

    def init(self, d: int, k: int, dtype: torch.dtype, device) -> None:
        """Allocate a fresh state for parameters W (d, k), b (k,)."""

    def state_dict(self) -> dict[str, Tensor]:
        """The solver's state between steps (momentum, curvature pairs) as named tensors."""
        return {}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        pass

    def iterate(self, full_batch, params: Params, guard: DivergenceGuard, epoch: int) -> EpochStats:
        raise NotImplementedError

    #: steps in a row whose decrease of F is at rounding level before a full-batch solver gives up
    FLAT_STEPS = 20

    def no_progress(self, before: float, after: float, dtype: torch.dtype) -> bool:
        """True once ``FLAT_STEPS`` steps in a row have changed F by less than 10 ulps of |F|: the
        solver can make no more progress in ``dtype`` (float32 below its gradient floor). A step that
        raises F by more is no stall but an overshoot (too large a rate: the divergence guard's case)."""
        flat = abs(before - after) <= 10 * torch.finfo(dtype).eps * max(abs(before), 1e-30)
        self._flat = getattr(self, "_flat", 0) + 1 if flat else 0
        return self._flat >= self.FLAT_STEPS


def grad_max(gW: Tensor, gb: Tensor) -> float:
    return float(torch.maximum(gW.abs().max(), gb.abs().max()))
