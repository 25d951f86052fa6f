r"""scikit-learn estimators over the training loop: ``LinearRegression``, ``SoftmaxRegression``.

Both fit ``Z = X W + b`` by minimising ``L(Z, Y) + (λ/2)||W||²`` (``λ = weight_decay``),
with ``L`` the mean loss over samples, using the solver named by ``solver``.
``__init__`` only stores the settings; ``fit`` validates. Inputs may be NumPy arrays,
pandas frames, torch tensors, or :class:`~linearnets.data.shards.Shards` (rows streamed from
disk). ``coef_`` has scikit-learn's layout (outputs × features).

The route of ``fit``: data → a :class:`~linearnets.data.source.DataSource` (the one target
encoder, :class:`~linearnets.data.targets.Targets`) → :func:`linearnets.train.train` with an
:class:`~linearnets.objective.Objective` and the named solver → a
:class:`~linearnets.train.TrainState` whose parameters become ``coef_``/``intercept_`` and whose
history is ``history_``. ``score`` and :meth:`evaluate` are :func:`linearnets.metrics.evaluate`.
"""

from __future__ import annotations

import math
import platform
import warnings
from dataclasses import replace

import numpy as np
import safetensors
import scipy.sparse as sp
import sklearn
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d, validate_data

from . import metrics, settings
from .autolr import auto_lr, race
from .checkpoint import Checkpointer, load_latest
from .data.arrays import as_tensor
from .data.hashing import FeatureHashing
from .data.shards import Shards
from .data.source import DataSource, InMemory, Interleaved, Streamed, feature_moments, holdout, standardized
from .data.sparse import CSR, column_moments, matmul, to_scipy_csr
from .data.targets import Targets, is_soft
from .distributed import LOCAL
from .errors import (
    CheckpointError,
    ConfigError,
    DataError,
    DivergenceError,
    LinearnetsError,
    ModelFileError,
    ScaleWarning,
)
from .losses import get_loss
from .objective import Objective
from .params import Params
from .persistence import read_model, save_model, write_model
from .progress import ProgressBar
from .solvers import FLOAT64_SOLVERS, SOLVERS, SolverConfig, get_solver
from .train import Callback, EarlyStopping, Evaluate, TrainState, require_memory, train
from .version import __version__

__all__ = ["LinearRegression", "SoftmaxRegression", "load", "resolve_device", "resolve_dtype"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}

#: iteration budgets of the full-batch solvers when ``epochs=None``: enough to converge (to ``tol``)
#: on standardised standard problems (digits, wine, breast cancer, diabetes) without a warning
SPARSE_FORMATS = ["csr", "csc", "coo"]          # scipy.sparse input (taken as CSR rows, never densified)
LR_WORDS = ("auto", "curvature")      # lr: a race of rates (fit), the curvature rule alone
DEFAULT_EPOCHS = {"exact": 1, "gd": 2000, "newton": 100, "newton-cg": 300, "lbfgs": 1000}


def resolve_device(device) -> torch.device:
    """``"cpu"``, ``"cuda"`` (or ``"cuda:N"``), ``"auto"`` (CUDA when present) → torch.device."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"Invalid device: {device!r}; use 'cpu', 'cuda' or 'auto'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} but no CUDA GPU is available; use device='cpu' or 'auto'")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"Invalid device: {device!r}; use 'cpu', 'cuda' or 'auto'")
    return dev


def resolve_dtype(dtype, solver: str) -> torch.dtype:
    """None → float64 for exact/newton/newton-cg/lbfgs, float32 for sgd/gd."""
    if dtype is None:
        return torch.float64 if solver in FLOAT64_SOLVERS else torch.float32
    if isinstance(dtype, torch.dtype):
        name = str(dtype).removeprefix("torch.")
    else:
        name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if name not in _DTYPES:
        raise ConfigError(f"Invalid dtype: {dtype!r}; use 'float32' or 'float64' "
                          "(half precision is not supported for training)")
    return _DTYPES[name]


def _as_numpy(a):
    """torch tensors → NumPy (torch sparse tensors → scipy CSR); half-precision inputs (float16,
    bfloat16) are widened to float32 (training and prediction run in float32 or float64;
    ``dtype="float16"`` is refused)."""
    a = to_scipy_csr(a)
    if sp.issparse(a) and a.dtype == np.float16:
        return a.astype(np.float32)
    if isinstance(a, torch.Tensor):
        if a.dtype in (torch.float16, torch.bfloat16):
            a = a.float()
        return a.detach().cpu().numpy()
    return a


def _versions() -> dict:
    return {"linearnets": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "scikit-learn": sklearn.__version__, "safetensors": safetensors.__version__,
            "python": platform.python_version()}


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


class _LinearModel(BaseEstimator):
    """Shared machinery; subclasses define the loss, the targets and the predictions."""

    _task = "regression"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True                   # scipy.sparse rows: O(nnz·k) products, never densified
        return tags

    # --- settings ------------------------------------------------------------------
    def _loss(self):
        raise NotImplementedError

    def _objective(self) -> Objective:
        return Objective(self._loss(), float(self.weight_decay), bool(self.fit_intercept))

    _sgd_epochs = 10                                                      # the book's, per task

    def _epochs(self) -> int:
        """``epochs``, or the solver's default budget when it is None (:data:`DEFAULT_EPOCHS`)."""
        if self.epochs is None:
            return self._sgd_epochs if self.solver == "sgd" else DEFAULT_EPOCHS[self.solver]
        return settings.integer("epochs", self.epochs)

    def _races(self) -> bool:
        """``fit`` with ``lr="auto"`` races rates (:func:`~linearnets.autolr.race`): SGD, no early stopping
        (its stop is not known in advance: the rule's rate, constant, as for ``partial_fit`` and ``gd``)."""
        return self.lr == "auto" and get_solver(self.solver).minibatch and not self.early_stopping

    def _schedule(self, incremental: bool = False) -> str:
        """``lr_schedule``; None: ``"anneal"`` where the rate was raced (the race assumes the decay at the
        end; ``partial_fit`` after such a fit goes on at its last rate), else ``"constant"``."""
        if self.lr_schedule is None:
            raced = getattr(self, "lr_race_", None) is not None if incremental else self._races()
            return "anneal" if raced else "constant"
        return self.lr_schedule

    def _solver_config(self, lr: float | None = None, incremental: bool = False) -> SolverConfig:
        lr = lr if lr is not None else (getattr(self, "lr_", 0.1) if isinstance(self.lr, str) else self.lr)
        return SolverConfig(lr=lr, batch_size=self.batch_size, momentum=self.momentum,
                            lr_schedule=self._schedule(incremental), epochs=self._epochs(), tol=self.tol,
                            seed=self.seed)

    def _check_settings(self):
        """Every setting by type and range (:mod:`linearnets.settings`); ConfigError names the bad one."""
        if not isinstance(self.solver, str):
            raise ConfigError(f"Invalid solver: {self.solver!r}; choose one of {', '.join(SOLVERS)}")
        if get_solver(self.solver).squared_only and self._task == "classification":
            raise ConfigError(f"solver {self.solver!r} is the closed form of the squared loss; "
                              "use sgd, gd, newton, newton-cg or lbfgs for softmax regression")
        settings.number("weight_decay", self.weight_decay, high=1e10, example="1e-4")   # beyond: W = 0 in any dtype
        settings.flag("early_stopping", self.early_stopping)
        settings.fraction("validation_fraction", self.validation_fraction)
        settings.integer("n_iter_no_change", self.n_iter_no_change)
        settings.integer("verbose", self.verbose, low=0)
        for name in ("standardize", "fit_intercept", "warm_start"):
            settings.flag(name, getattr(self, name))
        if not (isinstance(self.lr, str) and self.lr in LR_WORDS):
            settings.number("lr", self.lr, low_open=True, example="0.1, 'auto' or 'curvature'")
        self._solver_config(lr=0.1 if isinstance(self.lr, str) else None)
        self._device = resolve_device(self.device)
        self._dtype = resolve_dtype(self.dtype, self.solver)

    # --- data → sources ----------------------------------------------------------------
    def _validate_X(self, X, reset: bool):
        try:
            return validate_data(self, _as_numpy(X), reset=reset, dtype=[np.float64, np.float32],
                                 accept_sparse=SPARSE_FORMATS)
        except ValueError as e:
            raise DataError(str(e)) from e

    def _validate_Xy(self, X, y, reset: bool):
        # a solver that verifies finiteness during its own pass (the closed form checks its
        # moments) spares the separate NaN/Inf scan over X
        scan = not (reset and get_solver(self.solver).checks_finite)
        if sp.issparse(y) or (isinstance(y, torch.Tensor) and y.layout != torch.strided):
            raise DataError("y must be a dense array of labels or values (a sparse y is not taken); use y.toarray()")
        try:
            X, y = validate_data(self, _as_numpy(X), _as_numpy(y), reset=reset,
                                 dtype=[np.float64, np.float32], multi_output=True,
                                 y_numeric=self._task == "regression", ensure_all_finite=scan,
                                 accept_sparse=SPARSE_FORMATS)
        except ValueError as e:
            raise DataError(str(e)) from e
        return X, y

    def _check_shards(self, shards: Shards, fit: bool) -> None:
        if fit:
            self.n_features_in_ = shards.d
            if shards.feature_names is not None:
                self.feature_names_in_ = np.asarray(shards.feature_names, dtype=object)
            elif hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
            return
        if shards.d != self.n_features_in_:
            raise DataError(f"{shards.name} has {shards.d} features; the model was fitted with "
                            f"{self.n_features_in_}")
        names = getattr(self, "feature_names_in_", None)
        if names is not None and shards.feature_names is not None and list(names) != list(shards.feature_names):
            raise DataError(f"{shards.name}: feature columns {list(shards.feature_names)[:5]}… differ from "
                            f"the model's {list(names)[:5]}…")

    def _source(self, X, y=None, *, fit: bool, classes=None, comm=LOCAL, unknown: str = "error",
                sample_weight=None) -> DataSource:
        """Rows (arrays or shards) → a source in the model's dtype, targets encoded by the model's
        encoder (learned here when ``fit``), standardised by the model's transform (learned here
        when ``fit`` and ``standardize``). ``unknown="miss"``: labels the model does not know count
        as wrong (accuracy), instead of an error. ``sample_weight``: arrays only (shards carry a
        weight column, ``open_shards(..., weight=...)``)."""
        dtype, device = self._dtype, self._device
        if isinstance(X, Shards):
            if y is not None:
                raise DataError("the target of shards is one of their columns; pass y=None")
            if sample_weight is not None:
                raise DataError("shards carry their weights as a column: open_shards(path, weight='w')")
            if X.target is None:
                raise DataError(f"{X.name}: opened without a target column (has_target=False); "
                                "cannot fit or score on it")
            self._check_shards(X, fit)
            if fit:
                self._encoder = self._fit_stream_targets(X, comm)
                self._fit_transform(X, comm)
            return Streamed(X, self._encoder, dtype=dtype, device=device, unknown=unknown,
                            transform=self._transform)
        X, y = self._validate_Xy(X, y, reset=fit)
        y = self._prepare_y(y)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        if fit:
            self._encoder = self._fit_targets(y, classes, sample_weight)
            self._fit_transform(X, comm)
        return InMemory.from_arrays(X, y, self._encoder, dtype=dtype, device=device, unknown=unknown,
                                    feature_names=getattr(self, "feature_names_in_", None),
                                    sample_weight=sample_weight, transform=self._transform)

    def _fit_transform(self, X, comm) -> None:
        """Learn the standardisation (mean, scale) when ``standardize``; scale 1 for a constant feature."""
        if not self.standardize:
            self._transform = None
            for name in ("mean_", "scale_"):
                if hasattr(self, name):
                    delattr(self, name)
            return
        mean, var = feature_moments(X, comm)
        if sp.issparse(X) or getattr(X, "sparse", False):   # scaled, not centred: centring would densify
            mean = torch.zeros_like(mean)                   # (StandardScaler(with_mean=False))
        scale = var.sqrt()
        scale = torch.where(scale > 10 * torch.finfo(torch.float64).eps * mean.abs().clamp(min=1.0), scale, 1.0)
        self._transform = (mean, scale)
        self.mean_, self.scale_ = mean.numpy().copy(), scale.numpy().copy()

    def _prepare_y(self, y):
        return y

    # --- fitting -----------------------------------------------------------------------
    def fit(self, X, y=None, sample_weight=None, *, callbacks: list[Callback] | None = None, eval_set=None,
            checkpoint_dir=None, checkpoint_every: int = 0, resume: bool = False, comm=None,
            simulate_ranks: int = 1):
        """Fit from scratch (or from the newest checkpoint with ``resume=True``; from the current
        coefficients with ``warm_start=True``).

        ``X`` is an array-like (n, d) with targets ``y``, or :class:`~linearnets.data.shards.Shards`
        (``y=None``; rows streamed from disk, memory independent of n). ``sample_weight`` (n,) ≥ 0:
        the objective becomes Σ wᵢ ℓᵢ / Σ wᵢ + (λ/2)‖W‖² (shards: a weight column). ``eval_set=(X_val, y_val)``
        or shards adds ``val_loss`` and ``val_accuracy`` / ``val_mse``, ``val_r2`` to the history.
        ``callbacks``: :class:`~linearnets.train.Callback` objects (step and epoch events).
        ``checkpoint_dir``: write checkpoints there after every epoch and every
        ``checkpoint_every`` steps (minibatch solvers). ``resume``: continue from the newest
        checkpoint in ``checkpoint_dir`` (bitwise the run that was interrupted, on CPU); start
        fresh when there is none. ``comm`` (:func:`linearnets.distributed.init_from_env`): train
        data-parallel; this rank uses its share of the rows. ``simulate_ranks=P`` replays, in
        one process, the sample order of a P-rank run.
        """
        self._check_settings()
        comm = comm or LOCAL
        P = simulate_ranks
        if isinstance(P, bool) or int(P) != P or P < 1 or (comm.world_size > 1 and P != 1):
            raise ConfigError(f"Invalid simulate_ranks: {simulate_ranks!r}; use a positive integer "
                              "(and 1 in a distributed run)")
        if resume and checkpoint_dir is None:
            raise ConfigError("resume=True needs checkpoint_dir")
        try:
            return self._fit(X, y, sample_weight, callbacks, eval_set, checkpoint_dir, checkpoint_every, resume,
                             comm, int(P))
        except DivergenceError:
            raise                                        # the model keeps its last finite parameters
        except BaseException:
            self._forget()                               # no half-fitted model: an error leaves it unfitted
            raise

    def _fit(self, X, y, sample_weight, callbacks, eval_set, checkpoint_dir, checkpoint_every, resume, comm, P):
        vars(self).pop("preprocessing_", None)           # a new fit: how earlier data was prepared no longer applies
        warm = self._warm_params() if self.warm_start else None
        source = self._source(X, y, fit=True, comm=comm, sample_weight=sample_weight)
        objective = self._objective()
        cbs = list(callbacks or [])
        if self.early_stopping:
            source, val = self._holdout(source)
            cbs = [Evaluate(objective, _share(val, comm), comm),
                   EarlyStopping("val_loss", patience=self.n_iter_no_change)] + cbs
        elif eval_set is not None:
            cbs = [Evaluate(objective, _share(self._eval_source(eval_set), comm), comm)] + cbs
        fingerprint = None if checkpoint_dir is None else self._fingerprint(source, comm.world_size, P)
        source = _share(source, comm) if comm.world_size > 1 else Interleaved(source, P) if P > 1 else source
        state = self._fresh_state(source)
        if warm is not None and tuple(warm.W.shape) == (source.d, source.k):
            state.params.copy_(warm.to(dtype=self._dtype, device=self._device))
        self._choose_lr(objective, source, state.params, comm)       # one rate for every rank
        self._warn_scales(source)
        checkpointer = None
        self.resumed_from_ = None
        if checkpoint_dir is not None:
            checkpointer = Checkpointer(checkpoint_dir, fingerprint=fingerprint, every_steps=checkpoint_every,
                                        write=comm.rank == 0)
            if resume:
                ckpt = self._latest(checkpoint_dir, fingerprint, source, comm)
                if ckpt is not None:
                    ckpt.params = ckpt.params.to(dtype=self._dtype, device=self._device)
                    ckpt.solver_state = {k: v.to(self._device) for k, v in ckpt.solver_state.items()}
                    state, self.resumed_from_ = ckpt, str(ckpt.path)
                    last = state.history.last
                    if last.get("converged") or last.get("stopped_early") or last.get("stalled"):
                        self._finish(state)               # that run had finished: nothing more to do
                        return self
        return self._run(source, state, epochs=self._epochs(), callbacks=cbs, comm=comm, checkpoint=checkpointer)

    def _fresh_state(self, source: DataSource) -> TrainState:
        """A new training state for ``source`` — refused first if the run would not fit in memory."""
        require_memory(get_solver(self.solver)(self._solver_config(lr=0.1)), source.d, source.k, self._dtype)
        return TrainState.fresh(source.d, source.k, dtype=self._dtype, device=self._device)

    def _warm_params(self) -> Params | None:
        """The fitted parameters to start from (warm_start), in the coordinates training uses."""
        return self._params.clone() if hasattr(self, "_params") else None

    def _choose_lr(self, objective: Objective, source: DataSource, params: Params, comm=LOCAL, *,
                   incremental: bool = False) -> None:
        """``lr_``: ``lr``; for ``lr="curvature"`` the curvature rule's rate (:func:`~linearnets.autolr.auto_lr`);
        for ``lr="auto"`` the winner of a race of rates around it (:func:`~linearnets.autolr.race`;
        ``lr_race_`` says what it tried) — except for ``partial_fit``, whose later data is not known,
        early stopping, whose stop is not, and ``gd``, which runs to ``tol`` at any stable rate: they take
        the rule's. With ranks, each races on its share (the same steps an epoch as the run, each of B
        rows) and all take rank 0's winner."""
        self.lr_race_ = None
        solver = get_solver(self.solver)
        if not isinstance(self.lr, str) or not solver.uses_lr:
            self.lr_ = 0.1 if isinstance(self.lr, str) else float(self.lr)
            return
        batch = self.batch_size if solver.minibatch else source.n
        rule = auto_lr(objective, source, params, batch_size=batch, momentum=self.momentum, seed=self.seed, comm=comm)
        if incremental or not self._races():
            self.lr_ = rule
            return
        result = race(objective, source, params, lambda lr, epochs: solver(replace(self._solver_config(lr=lr),
                                                                                      epochs=epochs)),
                      start=rule, epochs=self._epochs(), batch_size=batch, seed=self.seed)
        if comm.world_size > 1:                  # every rank raced (none waits on another): rank 0's winner
            result = comm.broadcast_object(result)
        self.lr_, self.lr_race_ = result.lr, result

    def _warn_scales(self, source: DataSource) -> None:
        """Once per fit: SGD/GD on features whose scales differ by more than 10³, not standardised."""
        if self.standardize or not get_solver(self.solver).uses_lr:
            return
        first = next(iter(source.chunks()), None)
        if first is None or first.m < 2:
            return
        s1, s2, n = column_moments(first.X)
        std = (s2 / n - (s1 / n).square()).clamp(min=0.0).sqrt()
        live = std[std > 0]
        if live.numel() >= 2 and float(live.max() / live.min()) > 1e3:
            hi, lo = int(torch.argmax(torch.where(std > 0, std, -1.0))), int(torch.argmin(torch.where(std > 0, std, math.inf)))
            warnings.warn(f"feature scales differ by {float(live.max() / live.min()):.0e}× (column {source.column(hi)} "
                          f"spreads {float(std[hi]):.3g}, column {source.column(lo)} {float(std[lo]):.3g}): "
                          f"{self.solver} converges slowly on such data; use standardize=True (the CLI's default)",
                          ScaleWarning, stacklevel=4)

    def _latest(self, folder, fingerprint, source, comm):
        """The newest usable checkpoint, read by rank 0 and sent to every rank — or its error."""
        found = error = None
        if comm.rank == 0:
            try:
                found = load_latest(folder, fingerprint, self._checkpoint_check(source))
            except LinearnetsError as e:
                error = e
        found, error = comm.broadcast_object((found, error))
        if error is not None:
            raise error
        return found

    def _forget(self) -> None:
        """Drop every fitted attribute (after a failed fit)."""
        for name in list(vars(self)):
            if (name.endswith("_") and not name.startswith("__")) or name in ("_state", "_params", "_encoder", "_y_1d",
                                                                             "_transform"):
                delattr(self, name)

    def _checkpoint_check(self, source: DataSource):
        """A checkpoint must fit this run: W (d, k), b (k,), a step inside the epoch, a solver state
        the solver can take (hand-made or damaged files are skipped)."""
        d, k = source.d, source.k
        solver = get_solver(self.solver)(self._solver_config())

        def check(ckpt):
            if tuple(ckpt.params.W.shape) != (d, k) or tuple(ckpt.params.b.shape) != (k,):
                raise CheckpointError(f"{ckpt.path}: W {tuple(ckpt.params.W.shape)}, b {tuple(ckpt.params.b.shape)}; "
                                      f"this run has W ({d}, {k}), b ({k},)")
            if solver.minibatch and ckpt.step >= source.steps_per_epoch(self.batch_size):
                raise CheckpointError(f"{ckpt.path}: step {ckpt.step} is past the end of an epoch")
            bad = [key for key, v in ckpt.partial.items() if not isinstance(v, (int, float))]
            if bad:
                raise CheckpointError(f"{ckpt.path}: the epoch's sums {bad} are not numbers")
            solver.init(d, k, self._dtype, torch.device("cpu"))
            try:
                solver.load_state_dict({key: v.to(self._dtype) for key, v in ckpt.solver_state.items()})
            except (RuntimeError, KeyError, ValueError, TypeError) as e:
                raise CheckpointError(f"{ckpt.path}: the solver state does not fit ({str(e)[:100]})") from None
        return check

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One more epoch on (X, y), continuing from the current parameters and solver state
        (momentum, L-BFGS pairs; for ``exact``, the moments of every chunk so far — so the
        closed form over chunks equals the fit on all rows). Settings changed with
        ``set_params`` (``lr``, ``momentum``, …) apply from this call on; the standardisation and
        the automatic learning rate are fixed at the first call."""
        first = not hasattr(self, "_state")
        self._check_settings()
        if first:
            source = self._source(X, y, fit=True, classes=classes, sample_weight=sample_weight)
            state = self._fresh_state(source)
            self._choose_lr(self._objective(), source, state.params, incremental=True)
        else:
            state = self._state
            self._dtype, self._device = state.params.W.dtype, state.params.W.device    # the model's, not a new one
            source = self._source(X, y, fit=False, sample_weight=sample_weight)
            if not isinstance(self.lr, str):
                self.lr_ = float(self.lr)
        return self._run(source, state, epochs=state.epoch + 1, callbacks=(), comm=LOCAL, incremental=True)

    def _run(self, source, state: TrainState, *, epochs, callbacks, comm, checkpoint=None, incremental=False):
        cbs = list(callbacks)
        if self.verbose and comm.rank == 0:
            cbs.append(ProgressBar("epoch"))
        solver = get_solver(self.solver)(self._solver_config(lr=self.lr_, incremental=incremental))
        try:
            train(source, self._objective(), solver, state, epochs=epochs, comm=comm, callbacks=cbs,
                  checkpoint=checkpoint, warn_unconverged=not incremental)
        except DivergenceError as e:
            if not isinstance(self.lr, str) and get_solver(self.solver).uses_lr:   # name the rate that is safe here
                suggestion = auto_lr(self._objective(), source, state.params, batch_size=self.batch_size,
                                     momentum=self.momentum, seed=self.seed)
                raise DivergenceError(f"{e}; the curvature rule gives {suggestion:.3g} for this data (lr='auto' "
                                      "starts from it)", lr=e.lr, epoch=e.epoch, step=e.step, loss=e.loss) from None
            raise
        finally:
            self._finish(state)
        return self

    def _finish(self, state: TrainState):
        self._state = state
        self._params = state.params
        self.history_ = state.history
        self.n_iter_ = state.epoch                                        # epochs run, over every call
        W = state.params.W.detach().cpu().double().numpy()                # (d, k)
        b = state.params.b.detach().cpu().double().numpy()                # (k,)
        transform = getattr(self, "_transform", None)
        if transform is not None:                                         # report in the original units:
            mean, scale = (t.numpy() for t in transform)                  # z = ((x − μ)/σ) W + b
            W = W / scale[:, None]                                        #   = x (W/σ) + (b − μᵀ W/σ)
            b = b - mean @ W
        self.coef_, self.intercept_ = self._coef_layout(W, b)

    def _holdout(self, source: DataSource) -> tuple[DataSource, DataSource]:
        """(train, validation) for early stopping: ``validation_fraction`` of the rows."""
        if isinstance(source, Streamed):
            tr, va = source.shards.split(self.validation_fraction, self.seed)
            return (Streamed(tr, source.targets, dtype=source.dtype, device=source.device),
                    Streamed(va, source.targets, dtype=source.dtype, device=source.device))
        tr, va = holdout(source.n, self.validation_fraction, self.seed,
                         source.labels.cpu().numpy() if source.labels is not None else None)
        return source.rows(torch.from_numpy(tr)), source.rows(torch.from_numpy(va))

    def _eval_source(self, eval_set) -> DataSource:
        """``eval_set``: shards, or (X, y) or (X, y, sample_weight)."""
        if isinstance(eval_set, Shards):
            return self._source(eval_set, fit=False)
        Xv, yv, *weight = eval_set
        return self._source(Xv, yv, fit=False, sample_weight=weight[0] if weight else None)

    def _fingerprint(self, source: DataSource, world_size: int, simulate_ranks: int) -> dict:
        """The settings a checkpoint must share with the run that resumes from it."""
        skip = {"verbose"} | ({"epochs"} if self._schedule() == "constant" and not self._races() else set())
        settings = {k: (v if isinstance(v, (int, float, str, bool, type(None))) else str(v))
                    for k, v in self.get_params().items() if k not in skip}
        fp = {"model": type(self).__name__, **settings, "n": source.n, "d": source.d, "k": source.k,
              "data": source.fingerprint(), "world_size": world_size, "simulate_ranks": simulate_ranks,
              "dtype": str(self._dtype).removeprefix("torch.")}
        if isinstance(source, Streamed):
            sh = source.shards
            fp["stream"] = [sh.buffer_rows, sh.block_rows, sh.shuffle]
        if hasattr(self, "classes_"):
            fp["classes"] = [str(c) for c in self.classes_]
        return fp

    # --- metrics -------------------------------------------------------------------------
    def evaluate(self, X, y=None, sample_weight=None, *, comm=None) -> dict:
        """The metrics of the fitted model on (X, y) or on shards (:mod:`linearnets.metrics`):
        ``loss`` (the objective, penalty included), ``accuracy`` or ``mse`` and ``r2``, and ``n`` —
        weighted by ``sample_weight`` (and the class weights) when given. With ``comm``, this rank
        scores its share of the rows and the sums are all-reduced."""
        check_is_fitted(self, "_params")
        comm = comm or LOCAL
        source = self._source(X, y, fit=False, sample_weight=sample_weight)
        return metrics.evaluate(self._objective(), self._params, _share(source, comm), comm)

    def _score(self, X, y, sample_weight, key: str) -> float:
        check_is_fitted(self, "_params")
        source = self._source(X, y, fit=False, unknown="miss",                # as scikit-learn: an unknown
                              sample_weight=sample_weight)                     # label is a miss
        return metrics.evaluate(self._objective(), self._params, source, loss=False)[key]

    # --- prediction ----------------------------------------------------------------------
    def _decision(self, X) -> np.ndarray:
        """Logits / outputs Z (n, k), float64 NumPy; X an array-like or shards."""
        check_is_fitted(self, "_params")
        W, b = self._params.W, self._params.b
        transform = getattr(self, "_transform", None)

        def logits(Xc: torch.Tensor) -> torch.Tensor:                    # standardised as in training
            Xc = Xc if transform is None else standardized(Xc, transform, copy=True)
            return matmul(Xc, W) + b                                      # (n, k)
        if isinstance(X, Shards):
            self._check_shards(X, fit=False)
            parts = [logits(CSR.from_scipy(Xc, W.dtype, W.device) if sp.issparse(Xc)
                            else torch.from_numpy(Xc).to(dtype=W.dtype, device=W.device)) for Xc, _, _ in X.blocks()]
            Z = torch.cat(parts) if parts else W.new_zeros(0, W.shape[1])
        else:
            X = self._validate_X(X, reset=False)
            Z = logits(CSR.from_scipy(X, W.dtype, W.device) if sp.issparse(X) else as_tensor(X, W.dtype, W.device))
        return Z.detach().cpu().double().numpy()

    # --- persistence ---------------------------------------------------------------------
    def _card(self) -> dict:
        params = self._params
        return {
            "estimator": type(self).__name__, "task": self._task,
            "n_features": int(params.d), "n_outputs": int(params.k),
            "dtype": str(params.W.dtype).removeprefix("torch."),
            "y_1d": bool(getattr(self, "_y_1d", False)),
            "classes": self.classes_.tolist() if hasattr(self, "classes_") else None,
            "classes_dtype": (None if not hasattr(self, "classes_") else
                              "object" if self.classes_.dtype.kind == "O" else self.classes_.dtype.str),
            "feature_names": self.feature_names_in_.tolist() if hasattr(self, "feature_names_in_") else None,
            "standardize": None if getattr(self, "_transform", None) is None else {"stored": "model.safetensors"},
            "lr_": getattr(self, "lr_", None),
            "preprocessing": getattr(self, "preprocessing_", None),
            "hyperparameters": {k: _json_safe(v) for k, v in self.get_params().items()},
            "metrics": {"n_iter": int(self.n_iter_),
                        **{k: _json_safe(v) for k, v in (self.history_[-1] if self.history_ else {}).items()}},
            "versions": _versions(),
        }

    def save(self, path, *, atomic: bool = True, preprocessing: dict | None = None) -> None:
        """Write ``path/model.safetensors`` (W, b) and ``path/model.json`` (the card). The folder is
        replaced as a unit: after any failure (a full disk, a kill) the previous model loads
        unchanged. ``atomic=False`` writes into ``path`` as it is (a fresh folder being filled).
        ``preprocessing``: what turns a file's rows into this model's features (e.g. the CLI's
        ``{"feature_hashing": …}``), kept in the card; a loaded model has it as ``preprocessing_``."""
        check_is_fitted(self, "_params")
        if preprocessing is not None:
            self.preprocessing_ = preprocessing
        extra = None                                      # the standardisation beside the weights
        if getattr(self, "_transform", None) is not None:
            extra = {"mean": torch.from_numpy(self.mean_), "scale": torch.from_numpy(self.scale_)}
        if atomic:
            save_model(path, self._params, self._card(), extra)
        else:
            write_model(path, self._params, self._card(), extra)

    def _restore(self, card: dict, params: Params, device: str, extra: dict | None = None) -> None:
        """Fitted attributes from a card (already checked against the weights)."""
        self._check_settings()
        dev = resolve_device(device)
        d = params.d
        self._device, self._dtype = dev, params.W.dtype
        self.n_features_in_ = d
        names = card.get("feature_names")
        if names:
            if not isinstance(names, list) or len(names) != d:
                raise ModelFileError(f"'feature_names' must list {d} names")
            self.feature_names_in_ = np.asarray([str(n) for n in names], dtype=object)
        self._encoder = self._restore_targets(card, params.k)
        self._transform = None
        std = card.get("standardize")
        if std is not None:
            try:
                if isinstance(std, dict) and std.get("stored") == "model.safetensors":
                    mean, scale = extra["mean"].numpy(), extra["scale"].numpy()
                else:                                     # models saved by earlier builds: lists in the card
                    mean = np.asarray(std["mean"], dtype=np.float64)
                    scale = np.asarray(std["scale"], dtype=np.float64)
            except (KeyError, TypeError, ValueError):     # (TypeError: no extra tensors at all)
                raise ModelFileError("'standardize' must hold 'mean' and 'scale' lists, or say they are stored in "
                                     "model.safetensors (extra.mean, extra.scale)") from None
            if mean.shape != (d,) or scale.shape != (d,) or not np.isfinite(mean).all() or not (scale > 0).all():
                raise ModelFileError(f"'standardize' must hold {d} finite means and {d} positive scales")
            self.mean_, self.scale_ = mean, scale
            self._transform = (torch.from_numpy(mean), torch.from_numpy(scale))
        pre = card.get("preprocessing")
        if pre is not None:
            if not isinstance(pre, dict):
                raise ModelFileError("'preprocessing' must be an object")
            if "feature_hashing" in pre and FeatureHashing.from_card(pre["feature_hashing"]).n_features != d:
                raise ModelFileError(f"'preprocessing': the hashed features must number {d}, the model's")
            if not isinstance(pre.get("zero_based", False), bool):
                raise ModelFileError("'preprocessing': zero_based must be true or false")
            self.preprocessing_ = pre
        if isinstance(card.get("lr_"), (int, float)) and not isinstance(card.get("lr_"), bool):
            self.lr_ = float(card["lr_"])
        state = TrainState(Params(params.W.to(dev), params.b.to(dev)))
        state.epoch = int((card.get("metrics") or {}).get("n_iter", 0))
        self._finish(state)


class LinearRegression(RegressorMixin, _LinearModel):
    r"""Linear regression ``ŷ = X W + b`` with the half squared error.

    Parameters (keyword-only)
    -------------------------
    solver : {"exact", "sgd", "gd", "newton", "newton-cg", "lbfgs"}, default "exact"
        ``exact`` is the closed form (normal equations, Cholesky, float64).
    lr, batch_size, epochs, momentum, lr_schedule : SGD/GD settings (the book's
        defaults: lr=0.03, batch_size=10, epochs=3). ``lr="curvature"``: the curvature rule's
        rate; ``lr="auto"``: the winner of a race of rates around it (:mod:`linearnets.autolr`).
        ``lr_schedule`` None: ``"anneal"`` where ``lr="auto"`` raced the rate, else ``"constant"``.
    weight_decay : float, L2 penalty (λ/2)||W||² (b unpenalised). tol : gradient tolerance
        of full-batch solvers. early_stopping, validation_fraction, n_iter_no_change :
        hold out a fraction and stop when its loss stops improving. seed : shuffling seed.
    device : "cpu", "cuda", "auto". dtype : None (float64 for exact/Newton/L-BFGS, float32
        for SGD/GD), "float32" or "float64". verbose : show a progress bar.

    Fitted: ``coef_`` (d,) or (m, d), ``intercept_`` float or (m,), ``n_iter_``, ``history_``.
    """

    _sgd_epochs = 3                                                       # the book's

    def __init__(self, *, solver="exact", lr=0.03, batch_size=10, epochs=None, weight_decay=0.0,
                 momentum=0.0, lr_schedule=None, tol=1e-6, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=5, standardize=False, fit_intercept=True,
                 warm_start=False, seed=0, device="cpu", dtype=None, verbose=0):
        self.solver = solver
        self.lr = lr
        self.batch_size = batch_size
        self.epochs = epochs
        self.weight_decay = weight_decay
        self.momentum = momentum
        self.lr_schedule = lr_schedule
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.standardize = standardize
        self.fit_intercept = fit_intercept
        self.warm_start = warm_start
        self.seed = seed
        self.device = device
        self.dtype = dtype
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def _loss(self):
        return get_loss("squared")

    def _fit_targets(self, y, classes=None, sample_weight=None) -> Targets:
        self._y_1d = np.asarray(y).ndim == 1
        return Targets.fit(y, "regression")

    def _fit_stream_targets(self, shards: Shards, comm) -> Targets:
        self._y_1d = True
        return Targets("regression", 1)

    def _restore_targets(self, card: dict, k: int) -> Targets:
        self._y_1d = bool(card.get("y_1d", k == 1))
        return Targets("regression", k)

    def _coef_layout(self, W, b):
        if self._y_1d:
            return W[:, 0].copy(), float(b[0])
        return W.T.copy(), b.copy()

    def predict(self, X) -> np.ndarray:
        Z = self._decision(X)
        return Z[:, 0] if self._y_1d else Z

    def score(self, X, y=None, sample_weight=None) -> float:
        """R² (averaged over outputs), as :mod:`linearnets.metrics` computes it."""
        return self._score(X, y, sample_weight, "r2")


class SoftmaxRegression(ClassifierMixin, _LinearModel):
    r"""Softmax regression: ``Z = X W + b``, ``P = softmax(Z)``, prediction ``argmax Z``.

    Parameters (keyword-only): those of :class:`LinearRegression` (defaults: solver="sgd",
    lr=0.1, batch_size=256, epochs=10 — the book's), plus

    loss : {"cross_entropy", "mse", "kl"}, default "cross_entropy"
        ``mse`` is the squared error on softmax probabilities; ``kl`` is KL(Y ‖ P).
    label_smoothing : float in [0, 1), targets become (1-ε)Y + ε/k.

    ``fit(X, y)``: y holds class labels, or rows of probabilities (n, k) as soft targets.
    Fitted: ``classes_``, ``coef_`` (k, d), ``intercept_`` (k,), ``n_iter_``, ``history_``.
    """

    _task = "classification"

    def __init__(self, *, solver="sgd", loss="cross_entropy", lr=0.1, batch_size=256, epochs=None,
                 weight_decay=0.0, momentum=0.0, lr_schedule=None, label_smoothing=0.0,
                 class_weight=None, tol=1e-6, early_stopping=False, validation_fraction=0.1, n_iter_no_change=5,
                 standardize=False, fit_intercept=True, warm_start=False, seed=0, device="cpu", dtype=None,
                 verbose=0):
        self.solver = solver
        self.loss = loss
        self.lr = lr
        self.batch_size = batch_size
        self.epochs = epochs
        self.weight_decay = weight_decay
        self.momentum = momentum
        self.lr_schedule = lr_schedule
        self.label_smoothing = label_smoothing
        self.class_weight = class_weight
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.standardize = standardize
        self.fit_intercept = fit_intercept
        self.warm_start = warm_start
        self.seed = seed
        self.device = device
        self.dtype = dtype
        self.verbose = verbose

    def _check_settings(self):
        super()._check_settings()
        if not isinstance(self.loss, str) or not get_loss(self.loss).classification:
            raise ConfigError(f"Invalid loss: {self.loss!r}; use cross_entropy, mse or kl")
        settings.number("label_smoothing", self.label_smoothing, high=1.0, high_open=True, example="0.1")

    def _loss(self):
        return get_loss(self.loss)

    def _prepare_y(self, y):
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return y

    def _fit_targets(self, y, classes=None, sample_weight=None) -> Targets:
        """Labels → classes_ (all of ``classes`` when given, as in scikit-learn's partial_fit);
        probability rows (n, k) → soft targets over classes 0..k-1; ``class_weight`` → a weight per
        class ("balanced": n / (k · n_c), scikit-learn's)."""
        soft = is_soft(y)
        if not soft:
            try:
                check_classification_targets(y)
            except ValueError as e:
                raise DataError(str(e)) from e
        encoder = Targets.fit(y, "classification", classes=classes, smoothing=self.label_smoothing,
                              name=type(self).__name__)
        self.classes_ = encoder.classes
        if self.class_weight is None:
            return encoder
        if soft:
            raise ConfigError("class_weight needs class labels; soft targets carry their own weighting")
        present, counts = np.unique(y, return_counts=True)
        return replace(encoder, class_weights=self._class_weights(present, counts))

    def _class_weights(self, present: np.ndarray, counts: np.ndarray) -> tuple[float, ...]:
        """A weight per class of ``classes_`` from ``class_weight`` ("balanced" from the counts of the
        classes ``present``: n / (k · n_c), as scikit-learn's ``compute_class_weight``)."""
        cw = self.class_weight
        if isinstance(cw, str) and cw == "balanced":
            n, k = counts.sum(), len(present)
            by_label = {c: n / (k * m) for c, m in zip(present.tolist(), counts.tolist())}
            return tuple(float(by_label.get(c, 1.0)) for c in self.classes_.tolist())
        if isinstance(cw, dict):
            unknown = [key for key in cw if key not in set(self.classes_.tolist())]
            if unknown:
                raise ConfigError(f"class_weight names classes that are not in the data: {unknown[:5]}")
            out = tuple(float(settings.number("class_weight", cw.get(c, 1.0))) for c in self.classes_.tolist())
            return out
        raise ConfigError(f"Invalid class_weight: {cw!r}; use None, 'balanced' or a dict class → weight")

    def _fit_stream_targets(self, shards: Shards, comm) -> Targets:
        """The classes (and their counts) from one pass over the target column (each rank scans its
        share; the counts are merged)."""
        mine = shards.part(comm.rank, comm.world_size) if comm.world_size > 1 else shards
        present, counts = mine.labels(counts=True)
        if comm.world_size > 1:
            merged: dict = {}
            for values, number in comm.all_gather_object((present, counts)):
                for v, c in zip(values.tolist(), number.tolist()):
                    merged[v] = merged.get(v, 0) + c
            present = np.array(sorted(merged))
            counts = np.array([merged[v] for v in present.tolist()])
        try:
            check_classification_targets(present)
        except ValueError as e:
            raise DataError(f"{shards.name}: {e}") from e
        encoder = Targets.for_classes(present, self.label_smoothing, name=shards.name)
        self.classes_ = encoder.classes
        if self.class_weight is None:
            return encoder
        return replace(encoder, class_weights=self._class_weights(present, counts))

    def _restore_targets(self, card: dict, k: int) -> Targets:
        if not isinstance(card.get("classes"), list) or len(card["classes"]) != k:
            raise ModelFileError(f"'classes' must list {k} classes")
        dtype = card.get("classes_dtype") or None
        self.classes_ = np.asarray(card["classes"], dtype=object if dtype == "object" else dtype)
        return Targets("classification", k, self.classes_, float(self.label_smoothing))

    def _coef_layout(self, W, b):
        return W.T.copy(), b.copy()

    def decision_function(self, X) -> np.ndarray:
        """Logits Z (n, k); for two classes the log-odds Z₁ - Z₀ (n,), as scikit-learn expects."""
        Z = self._decision(X)
        return Z[:, 1] - Z[:, 0] if Z.shape[1] == 2 else Z

    def predict_proba(self, X) -> np.ndarray:
        """softmax(Z), rows sum to 1; shape (n, k)."""
        return torch.softmax(torch.from_numpy(self._decision(X)), dim=1).numpy()

    def predict_log_proba(self, X) -> np.ndarray:
        return torch.log_softmax(torch.from_numpy(self._decision(X)), dim=1).numpy()

    def predict(self, X) -> np.ndarray:
        """The class of the largest logit (the first of tied ones)."""
        Z = self._decision(X)
        return self.classes_[Z.argmax(axis=1)]

    def score(self, X, y=None, sample_weight=None) -> float:
        """Accuracy, as :mod:`linearnets.metrics` computes it (argmax; labels must be known)."""
        return self._score(X, y, sample_weight, "accuracy")


ESTIMATORS = {cls.__name__: cls for cls in (LinearRegression, SoftmaxRegression)}


def _share(source: DataSource, comm) -> DataSource:
    """This rank's share of ``source`` (all of it in a single process)."""
    return source.part(comm.rank, comm.world_size) if comm.world_size > 1 else source


def load(path, *, device: str = "cpu"):
    """Load a model saved by ``model.save(path)``. Never executes code from the files."""
    params, card, card_path, extra = read_model(path)
    estimator = card.get("estimator")
    cls = ESTIMATORS.get(estimator) if isinstance(estimator, str) else None
    if cls is None:
        raise ModelFileError(f"{card_path}: unknown estimator {estimator!r}")
    try:
        hyper = dict(card["hyperparameters"])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{card_path} is missing or has a bad field: {e}") from None
    unknown = set(hyper) - set(cls().get_params())
    if unknown:
        raise ModelFileError(f"{card_path}: unknown hyperparameters {sorted(unknown)}")
    hyper["device"] = device
    try:
        model = cls(**hyper)
        model._restore(card, params, device, extra)   # the card's settings must be valid ones
    except ModelFileError as e:
        raise ModelFileError(f"{card_path}: {e}") from None
    except (LinearnetsError, TypeError, ValueError, KeyError, AttributeError) as e:
        raise ModelFileError(f"{card_path}: invalid card ({type(e).__name__}: {e})") from None
    return model
