r"""The training loop: a source's batches → solver steps → a history, with public events.

    history = train(source, objective, solver, state, epochs=10, callbacks=[...])

One loop for every solver, data source and number of ranks:

* **minibatch solvers** (SGD): the loop walks ``source.batches(epoch, B, seed)``, computes each
  batch's loss and ``G = dL/dZ`` through the :class:`~linearnets.objective.Objective`, sums the
  step over the ranks of ``comm`` (one all-reduce of [Σ Gᵀx, Σ G, Σ ℓ, m]), checks the loss with
  the :class:`~linearnets.solvers.DivergenceGuard`, and lets the solver update the parameters;
* **full-batch solvers** (GD, Newton, Newton-CG, L-BFGS, exact): one iteration per epoch over a
  :class:`~linearnets.objective.FullBatch` of the source.

Everything a run needs to continue is a :class:`TrainState` (parameters, epoch and step, the
unfinished epoch's sums, the solver's state, the guard's limit, the history); ``checkpoint``
writes it (:mod:`linearnets.checkpoint`) after every epoch and every ``every_steps`` steps, and a
run continued from it is bitwise the run that was interrupted.

**Events** (subclass :class:`Callback`; every hook is optional):

* ``on_train_begin(state, epochs)`` — before the first epoch (``epochs`` still to run);
* ``on_step(state, step)`` — after every minibatch update (:class:`StepStats`: epoch, step, the
  step's loss with the penalty, its rows, the learning rate, and the new parameters — a view
  valid during the call; clone it to keep it);
* ``on_epoch(state, record)`` — after every epoch with its history record (add keys to it);
  return True to stop training;
* ``on_train_end(state, history)`` — always, also after an error.

A history record: ``epoch``, ``loss`` (F with the penalty — after the step for full-batch
solvers, the mean over the epoch's steps, each at its own parameters, for minibatch ones),
``accuracy`` (minibatch, classification: argmax hits on the batches as they were trained),
``seconds``, ``samples_per_s``, ``steps``, ``lr``, ``grad_max`` (full batch), ``converged``.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from sklearn.exceptions import ConvergenceWarning

from . import memory
from .data.source import DataSource
from .data.sparse import gt_x, is_sparse
from .distributed import LOCAL
from .errors import ConfigError, DataError, DivergenceError
from .metrics import evaluate, hits
from .objective import FullBatch, Objective
from .params import ClassMajor, Params
from .solvers import DivergenceGuard, EpochStats, Solver, learning_rate
from .solvers.sgd import SGD, SparseSteps

__all__ = ["train", "require_memory", "TrainState", "History", "StepStats", "Callback", "Evaluate", "EarlyStopping"]


class History(list):
    """A list of per-epoch records (dicts), with a couple of conveniences."""

    def column(self, key: str) -> list:
        return [r.get(key) for r in self]

    @property
    def last(self) -> dict:
        return self[-1] if self else {}


@dataclass
class TrainState:
    """Where a run stands: everything needed to continue it exactly."""

    params: Params
    epoch: int = 0                                   # epochs completed
    step: int = 0                                    # steps completed in epoch ``epoch`` (0 at a boundary)
    partial: dict = field(default_factory=dict)      # sums of the unfinished epoch (loss_sum, hits, samples)
    solver_state: dict = field(default_factory=dict) # the solver's tensors (momentum, pairs, moments)
    guard_limit: float | None = None                 # the divergence guard's threshold, fixed at the first loss
    history: History = field(default_factory=History)

    @classmethod
    def fresh(cls, d: int, k: int, *, dtype=torch.float32, device="cpu") -> "TrainState":
        return cls(Params.zeros(d, k, dtype=dtype, device=device))


class StepStats:
    """One minibatch step: ``epoch`` (0-based), ``step`` (1-based within the epoch), ``loss`` (the
    batch's loss + (λ/2)||W||², at the parameters before the step), ``samples`` (rows of the step,
    over all ranks), ``lr``, and ``params`` — the parameters after the step (a view, valid during
    the call). ``params`` is formed when first read: on sparse rows that costs O(d·k) (every row
    brought to the present step), so a listener that does not read it keeps a step O(nnz·k)."""

    __slots__ = ("epoch", "step", "loss", "samples", "lr", "_params")

    def __init__(self, epoch: int, step: int, loss: float, samples: int, lr: float, params):
        self.epoch, self.step, self.loss, self.samples, self.lr = epoch, step, loss, samples, lr
        self._params = params                              # Params, or a function that forms them

    @property
    def params(self) -> Params:
        if callable(self._params):
            self._params = self._params()
        return self._params

    def __repr__(self) -> str:
        return f"StepStats(epoch={self.epoch}, step={self.step}, loss={self.loss:.6g}, samples={self.samples})"


class Callback:
    """Hooks of the loop (see the module docstring). ``on_epoch`` may return True to stop."""

    def on_train_begin(self, state: TrainState, epochs: int) -> None:
        pass

    def on_step(self, state: TrainState, step: StepStats) -> None:
        pass

    def on_epoch(self, state: TrainState, record: dict) -> bool | None:
        return None

    def on_train_end(self, state: TrainState, history: History) -> None:
        pass


class Evaluate(Callback):
    """Adds ``{prefix}loss`` and ``{prefix}accuracy`` (classification) or ``{prefix}mse`` and
    ``{prefix}r2`` (regression) on other data — :func:`linearnets.metrics.evaluate`."""

    def __init__(self, objective: Objective, source: DataSource, comm=LOCAL, prefix: str = "val_"):
        self.objective, self.source, self.comm, self.prefix = objective, source, comm, prefix

    def on_epoch(self, state, record):
        for key, value in evaluate(self.objective, state.params, self.source, self.comm).items():
            if key != "n":
                record[self.prefix + key] = value


class EarlyStopping(Callback):
    """Stops when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs,
    and restores the best parameters seen."""

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0):
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.best = math.inf
        self.best_params: Params | None = None
        self.wait = 0

    def on_epoch(self, state, record):
        value = record.get(self.monitor)
        if value is None:
            return None
        if value < self.best - self.min_delta:
            self.best, self.wait = value, 0
            self.best_params = state.params.clone()
            return None
        self.wait += 1
        if self.wait >= self.patience:
            if self.best_params is not None:
                state.params.copy_(self.best_params)
            record["stopped_early"] = True
            return True
        return None


def train(source: DataSource, objective: Objective, solver: Solver, state: TrainState, *, epochs: int,
          comm=LOCAL, callbacks: Sequence[Callback] = (), checkpoint=None, warn_unconverged: bool = True) -> History:
    """Run ``solver`` from ``state`` until ``epochs`` epochs are done (or a callback or convergence
    stops it), updating ``state`` in place; returns the records of the epochs run by this call
    (``state.history`` holds them all).

    ``comm`` (:mod:`linearnets.distributed`): ``source`` is this rank's share; steps and sums are
    reduced over the ranks. ``checkpoint`` (:class:`~linearnets.checkpoint.Checkpointer`): written
    after every epoch and, for minibatch solvers, every ``every_steps`` steps. Raises
    :class:`~linearnets.DivergenceError` at the first non-finite or exploding loss, with
    ``state.params`` at the last parameters whose loss was finite. ``warn_unconverged``: a
    full-batch solver that stops at ``epochs`` short of ``tol``, or stalls, warns
    (ConvergenceWarning); off for deliberate budgets (the lab's).
    """
    if solver.squared_only and objective.loss.classification:
        raise ConfigError(f"solver {solver.name!r} is the closed form of the squared loss; "
                          f"use sgd, gd, newton, newton-cg or lbfgs for {objective.loss.name}")
    params = state.params
    if solver.uses_lr and objective.weight_decay * solver.config.lr >= 2:
        raise ConfigError(f"lr × weight_decay = {solver.config.lr:g} × {objective.weight_decay:g} ≥ 2: the penalty "
                          f"alone makes every {solver.name} step overshoot; use lr < {2 / objective.weight_decay:.3g} "
                          "or a smaller weight_decay")
    d, k = source.d, source.k
    require_memory(solver, d, k, params.W.dtype)
    if isinstance(solver, SGD):                                # sparse rows, one process: lazy steps, row-major momentum
        solver.init(d, k, params.W.dtype, params.W.device, rows=source.sparse and comm.world_size == 1)
    else:
        solver.init(d, k, params.W.dtype, params.W.device)
    if state.solver_state:
        solver.load_state_dict(state.solver_state)
    guard = DivergenceGuard(solver.config.lr if solver.uses_lr else None, limit=state.guard_limit)
    history = History()
    callbacks = list(callbacks)
    listeners = [cb for cb in callbacks if type(cb).on_step is not Callback.on_step]
    full_batch = None if solver.minibatch else FullBatch(objective, source, comm)
    for cb in callbacks:
        cb.on_train_begin(state, epochs - state.epoch)
    try:
        for epoch in range(state.epoch, epochs):
            guard.epoch, guard.step = epoch, state.step
            t0 = time.perf_counter()
            if solver.minibatch:
                stats = _minibatch_epoch(source, objective, solver, state, guard, epoch, comm, listeners,
                                         checkpoint)
            else:
                try:
                    stats = solver.iterate(full_batch, params, guard, epoch)
                except DivergenceError:
                    _diagnose(source)
                    raise
            seconds = time.perf_counter() - t0
            stalled = stats.extra.pop("stalled", False)
            if stalled:                                      # no step lowers F: the data, or the dtype
                _diagnose(source)
            if stalled and warn_unconverged:
                warnings.warn(f"{solver.name} stopped at epoch {epoch + 1}: its steps no longer lower the loss "
                              f"in {str(params.W.dtype).removeprefix('torch.')}, with max|∇F| = "
                              f"{stats.grad_max:.3g} > tol = {solver.config.tol:g}; use float64, a larger tol, or "
                              "standardized features", ConvergenceWarning, stacklevel=2)
            if stalled:
                if not stats.steps:                          # a failed line search is no epoch
                    if state.history:
                        state.history.last["stalled"] = True
                    break
            if stats.converged and stats.steps == 0 and history:
                history.last["converged"] = True             # a check that took no step is no epoch
                break
            record = _record(epoch, stats, seconds)
            state.epoch, state.step, state.partial = epoch + 1, 0, {}
            state.history.append(record)
            history.append(record)
            if stalled:
                record["stalled"] = True
            stop = stats.converged or stalled
            for cb in callbacks:
                stop = bool(cb.on_epoch(state, record)) or stop
            if checkpoint is not None:
                _sync(state, solver, guard)
                checkpoint.save(state)
            if stop:
                break
        else:                                                # every epoch ran: at the limit
            last = state.history.last
            if warn_unconverged and history and not solver.minibatch and not last.get("converged") and epochs > 1:
                warnings.warn(f"{solver.name} reached its iteration limit (epochs={epochs}) before max|∇F| ≤ tol = "
                              f"{solver.config.tol:g}: max|∇F| = {last.get('grad_max', float('nan')):.3g}; raise "
                              "epochs (None: the solver's default budget), loosen tol, or standardize the features",
                              ConvergenceWarning, stacklevel=2)
    finally:
        _sync(state, solver, guard)
        for cb in callbacks:
            cb.on_train_end(state, history)
    return history


def require_memory(solver: Solver, d: int, k: int, dtype: torch.dtype) -> None:
    """Refuse (ConfigError, before anything that size is allocated) a run whose parameter-sized
    buffers — W and b, the solver's state, the loop's, the fitted coefficients — exceed the memory
    budget (:mod:`linearnets.memory`)."""
    copies = solver.parameter_copies()
    memory.require(copies * (d + 1) * k * torch.finfo(dtype).bits // 8,
                   f"{solver.name} on {d} features × {k} outputs (about {copies} copies of W)",
                   "use fewer features (e.g. a smaller --hash-features), fewer outputs, or float32")


def _diagnose(source: DataSource, X=None) -> None:
    """A loss or gradient that is not finite, or a step that cannot lower F: when the features are
    to blame (NaN, infinity, values too large for the dtype), say so — a DataError naming the column."""
    problem = source.bad_values(X)
    if problem is not None:
        raise DataError(problem) from None


def _sync(state: TrainState, solver: Solver, guard: DivergenceGuard) -> None:
    state.solver_state = solver.state_dict()
    state.guard_limit = guard.limit


def _record(epoch: int, stats: EpochStats, seconds: float) -> dict:
    timed = stats.samples if stats.timed_samples is None else stats.timed_samples
    record = {"epoch": epoch + 1, "loss": stats.loss, "seconds": seconds,
              "samples_per_s": timed / seconds if seconds > 0 else float("inf"), "steps": stats.steps}
    if stats.accuracy is not None:
        record["accuracy"] = stats.accuracy
    if stats.lr is not None:
        record["lr"] = stats.lr
    if stats.grad_max is not None:
        record["grad_max"] = stats.grad_max
    record.update(stats.extra)
    if stats.converged:
        record["converged"] = True
    return record


def _minibatch_epoch(source: DataSource, objective: Objective, solver: Solver, state: TrainState,
                     guard: DivergenceGuard, epoch: int, comm, listeners: list, checkpoint) -> EpochStats:
    """One pass over ``source``'s minibatches. The parameters live in the class-major layout in
    two buffers that alternate: step t reads (W_t, b_t) from one and writes (W_t+1, b_t+1) into
    the other, so the last parameters with a finite loss are always at hand, without copies."""
    config = solver.config
    lr, wd = learning_rate(config, epoch), objective.weight_decay
    B, k, d = int(config.batch_size), source.k, source.d
    n_steps = source.steps_per_epoch(B)
    skip, partial = state.step, state.partial                      # resuming inside this epoch
    loss_sum, samples = float(partial.get("loss_sum", 0.0)), int(partial.get("samples", 0))
    total_mass = float(partial.get("mass", samples))               # Σ w of the rows seen (rows if unweighted)
    resumed_samples = samples
    # the epoch's hits so far are kept summed over the ranks: rank 0 carries them, the others start at 0
    earlier_hits = float(partial.get("hits", 0)) if comm.rank == 0 else 0.0
    correct = (torch.tensor(earlier_hits, dtype=source.dtype, device=source.device) if source.weighted
               else torch.tensor(int(earlier_hits), dtype=torch.int64, device=source.device))
    classification = source.classification
    distributed = comm.world_size > 1
    # sparse rows on one process: the rows a step touches are updated in place, the others catch up
    # lazily (SparseSteps: O(nnz·k) a step); otherwise two class-major buffers, Wᵀ (k, d), b (k,)
    lazy = source.sparse and not distributed
    sparse_steps = cur = nxt = None
    if lazy:
        sparse_steps = SparseSteps(state.params, getattr(solver, "vWt", None), getattr(solver, "vb", None), lr=lr,
                                   weight_decay=wd, momentum=config.momentum, intercept=objective.fit_intercept,
                                   steps=n_steps)
    else:
        cur = ClassMajor.of(state.params)
        nxt = cur.clone()
    buf = cur.Wt.new_zeros(k * d + k + 3) if distributed else None
    step = 0
    try:
        for block in source.batches(epoch, B, config.seed):
            step += 1
            if step <= skip:                                       # resume: replay the order only
                continue
            m = block.m
            mass = m if block.w is None else block.mass                # Σ w: the step's share of the epoch
            if m:
                if lazy:
                    L, Gt, Zt = sparse_steps.loss_and_logit_grad(objective, block)
                else:
                    L, Gt, Zt = objective.loss_and_logit_grad(cur.Wt, cur.b, block)   # Gᵀ = (dL/dZ)ᵀ (k, m)
                if classification:                                 # (a compiled sparse step counts its own)
                    seen = sparse_steps.hits if lazy else None
                    correct.add_(hits(Zt, block.labels, block.w) if seen is None else seen)
            grad = None
            if distributed:                                        # the global batch's mean gradient
                mass, rows = _all_reduce_step(comm, buf, block.X, Gt if m else None, L if m else None, mass, k, d)
                L, grad = buf[-3], (buf[:k * d].view(k, d), buf[k * d:k * d + k])
            else:
                rows = m
            if not mass:                                           # nothing here, or weights all 0
                continue
            try:
                penalty = (sparse_steps.penalty() if lazy else objective.penalty(cur.Wt)) if wd else 0.0
                value = guard.check(L + penalty if wd else L)
            except DivergenceError:
                if m:
                    _diagnose(source, block.X)
                raise
            loss_sum += value * mass
            total_mass += mass
            samples += rows
            if lazy:
                sparse_steps.update(Gt)
            else:
                solver.update(cur, nxt, lr, wd, Gt if m else None, block.X, grad, objective.fit_intercept)
                cur, nxt = nxt, cur
            if listeners:
                stats = StepStats(epoch, step, value, rows, lr, sparse_steps.params if lazy else cur.view())
                for cb in listeners:
                    cb.on_step(state, stats)
            if checkpoint is not None and checkpoint.due(step) and step < n_steps:
                _write(state, solver, cur, sparse_steps)
                state.step = step
                every_rank = correct.clone()
                comm.sum_(every_rank)
                state.partial = {"loss_sum": loss_sum, "samples": samples, "mass": total_mass,
                                 "hits": float(every_rank)}
                _sync(state, solver, guard)
                checkpoint.save(state)
    except DivergenceError:
        if lazy:
            sparse_steps.rollback()                                # the last finite-loss params
        else:
            cur = nxt
        raise
    finally:
        _write(state, solver, cur, sparse_steps)
    accuracy = None
    if classification:
        comm.sum_(correct)                    # (reduced in float64: exact for counts below 2⁵³)
        accuracy = float(correct) / total_mass if total_mass else float("nan")
    return EpochStats(loss=loss_sum / total_mass if total_mass else float("nan"), samples=samples, steps=n_steps,
                      lr=lr, accuracy=accuracy, timed_samples=samples - resumed_samples)


def _write(state: TrainState, solver: Solver, cur: ClassMajor | None, sparse_steps: SparseSteps | None) -> None:
    """The loop's present parameters → ``state.params`` (and, for sparse steps, the momentum → the solver)."""
    if sparse_steps is not None:
        sparse_steps.write_to(state.params, getattr(solver, "vWt", None))
    else:
        cur.write_to(state.params)


def _all_reduce_step(comm, buf, X, Gt, L, mass: float, k: int, d: int) -> tuple[float, int]:
    """buf ← Σ over ranks of [μ·Gᵀ X, μ·Σ G, μ·L, μ, m] (μ: the rank's batch mass, m its rows), then
    the first three ÷ M (the global batch's mass); returns (M, the global batch's rows)."""
    if Gt is None:
        buf.zero_()
    else:
        if is_sparse(X):
            buf[:k * d].view(k, d).copy_(gt_x(Gt, X))
        else:
            torch.mm(Gt, X, out=buf[:k * d].view(k, d))
        torch.sum(Gt, dim=1, out=buf[k * d:k * d + k])
        buf[-3] = L
        buf[:-2].mul_(mass)
        buf[-2], buf[-1] = mass, X.shape[0]
    comm.all_reduce_(buf)
    M, rows = float(buf[-2]), int(round(float(buf[-1])))
    if M:
        buf[:-2].div_(M)
    return M, rows
