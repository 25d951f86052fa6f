r"""scikit-learn estimators over the training loop: ``LinearRegression``, ``SoftmaxRegression``.

Both fit ``Z = X W + b`` by minimising ``L(Z, Y) + (λ/2)||W||²`` (``λ = weight_decay``),
with ``L`` the mean loss over samples, using the solver named by ``solver``.
``__init__`` only stores the settings; ``fit`` validates. Inputs may be NumPy arrays,
pandas frames or torch tensors. ``coef_`` has scikit-learn's layout (outputs × features).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from .errors import ConfigError, DataError
from .losses import get_loss, one_hot, smooth_labels
from .objective import Problem
from .params import Params
from .solvers import FLOAT64_SOLVERS, SolverConfig, get_solver
from .train import Callback, EarlyStopping, Evaluate, History, train

__all__ = ["LinearRegression", "SoftmaxRegression", "resolve_device", "resolve_dtype"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


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
    """torch tensors → NumPy; half-precision inputs (float16, bfloat16) are widened to float32
    (training and prediction run in float32 or float64; ``dtype="float16"`` is refused)."""
    if isinstance(a, torch.Tensor):
        if a.dtype in (torch.float16, torch.bfloat16):
            a = a.float()
        return a.detach().cpu().numpy()
    return a


def as_tensor(a: np.ndarray, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """NumPy → torch without a copy when dtype and device allow (read-only arrays are never written)."""
    a = np.ascontiguousarray(a)
    if not a.flags.writeable:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            t = torch.from_numpy(a)
    else:
        t = torch.from_numpy(a)
    return t.to(dtype=dtype, device=device)


class _LinearModel(BaseEstimator):
    """Shared machinery; subclasses define the loss, targets and predictions."""

    _task = "regression"

    # --- settings ------------------------------------------------------------------
    def _loss(self):
        raise NotImplementedError

    def _solver_config(self) -> SolverConfig:
        return SolverConfig(lr=self.lr, batch_size=self.batch_size, momentum=self.momentum,
                            lr_schedule=self.lr_schedule, epochs=self.epochs, tol=self.tol,
                            seed=self.seed)

    def _check_settings(self):
        get_solver(self.solver)
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise ConfigError(f"Invalid weight_decay: {self.weight_decay}; use a non-negative number")
        self._solver_config()
        self._device = resolve_device(self.device)
        self._dtype = resolve_dtype(self.dtype, self.solver)

    # --- data ------------------------------------------------------------------------
    def _validate_X(self, X, reset: bool):
        try:
            return validate_data(self, _as_numpy(X), reset=reset, dtype=[np.float64, np.float32])
        except ValueError as e:
            raise DataError(str(e)) from e

    def _validate_Xy(self, X, y, reset: bool):
        # a solver that verifies finiteness during its own pass (the closed form checks its
        # moments) spares the separate NaN/Inf scan over X
        scan = not getattr(get_solver(self.solver), "checks_finite", False)
        try:
            X, y = validate_data(self, _as_numpy(X), _as_numpy(y), reset=reset,
                                 dtype=[np.float64, np.float32], multi_output=True,
                                 y_numeric=self._task == "regression", ensure_all_finite=scan)
        except ValueError as e:
            raise DataError(str(e)) from e
        return X, y

    def _problem(self, X: np.ndarray, Y: torch.Tensor, comm=None, simulate_ranks: int = 1) -> Problem:
        return Problem(as_tensor(X, self._dtype, self._device), Y, self._loss(), self.weight_decay,
                       comm=comm, simulate_ranks=simulate_ranks)

    # --- fitting -----------------------------------------------------------------------
    def fit(self, X, y=None, *, callbacks: list[Callback] | None = None, eval_set=None,
            checkpoint_dir=None, checkpoint_every: int = 0, resume: bool = False, comm=None,
            simulate_ranks: int = 1):
        """Fit from scratch (or from the newest checkpoint with ``resume=True``).

        ``X`` is an array-like (n, d) with targets ``y``, or a
        :class:`~linearnets.data.stream.Shards` (``y=None``; rows streamed from disk, memory
        independent of n). ``eval_set=(X_val, y_val)`` adds val_loss/val_accuracy to the history.
        ``checkpoint_dir``: write checkpoints there after every epoch and every
        ``checkpoint_every`` steps (minibatch solvers). ``resume``: continue from the newest
        checkpoint in ``checkpoint_dir`` (bitwise the run that was interrupted, on CPU); start
        fresh when there is none. ``comm`` (:func:`linearnets.distributed.init_from_env`): train
        data-parallel; this rank uses its part of the rows. ``simulate_ranks=P`` replays, in
        one process, the sample order of a P-rank run.
        """
        self._check_settings()
        from .data.stream import Shards
        if self.early_stopping and comm is not None and comm.world_size > 1:
            raise ConfigError("early_stopping is not supported in a distributed run; pass eval_set instead")
        if isinstance(X, Shards):
            if y is not None:
                raise DataError("fit(shards): the target is a column of the shards; pass y=None")
            problem = self._stream_problem(X, comm, simulate_ranks)
        else:
            X, y = self._validate_Xy(X, y, reset=True)
            Y = self._targets(y, reset=True)                             # (n, k)
            if comm is not None and comm.world_size > 1:                 # this rank's rows only
                from .data.stream import rank_range
                lo, hi = rank_range(X.shape[0], comm.rank, comm.world_size)
                X, Y = X[lo:hi], Y[lo:hi]
            problem = self._problem(X, Y, comm, simulate_ranks)
        params = Params.zeros(problem.d, problem.k, dtype=self._dtype, device=self._device)
        checkpointer = ckpt = None
        if checkpoint_dir is not None:
            from .checkpoint import Checkpointer, load_latest
            fingerprint = self._fingerprint(problem)
            checkpointer = Checkpointer(checkpoint_dir, fingerprint=fingerprint, every_steps=checkpoint_every,
                                        write=comm is None or comm.rank == 0)
            if resume:
                ckpt = load_latest(checkpoint_dir, fingerprint) if checkpointer.write else None
                if comm is not None and comm.world_size > 1:
                    ckpt = comm.broadcast_object(ckpt)
                if ckpt is not None:
                    ckpt.params = ckpt.params.to(dtype=self._dtype, device=self._device)
                    ckpt.solver_state = {k: v.to(self._device) for k, v in ckpt.solver_state.items()}
        elif resume:
            raise ConfigError("resume=True needs checkpoint_dir")
        self.resumed_from_ = None if ckpt is None else str(ckpt.path)
        return self._run_problem(problem, params, epochs=self.epochs, callbacks=callbacks, eval_set=eval_set,
                                 fresh=True, checkpointer=checkpointer, resume=ckpt)

    def stream_metrics(self, shards, comm=None) -> dict:
        """Mean loss (and accuracy) of the fitted model over streamed rows, in one pass:
        ``{"loss", "accuracy"}`` for classification, ``{"mse", "r2"}`` for regression."""
        check_is_fitted(self, "_params")
        problem = self._stream_problem(shards, comm, 1, refit=False)
        if problem.loss.classification:
            problem.weight_decay = 0.0
            F, acc = problem.value_and_accuracy(self._params)
            return {"accuracy": acc, self.loss: float(F)}
        # one pass: Σ r², Σ y, Σ y² for the MSE and R²
        W, b = self._params.W, self._params.b
        sums = torch.zeros(3, dtype=torch.float64)
        for Xc, Tc in problem.class_major_chunks():
            y = Tc[0].double()
            r = (Xc @ W + b)[:, 0].double() - y
            sums += torch.stack([r.square().sum(), y.sum(), y.square().sum()])
        if problem.comm is not None:
            problem.comm.sum_(sums)
        n = problem.n_total
        mse, var = float(sums[0]) / n, float(sums[2]) / n - (float(sums[1]) / n) ** 2
        return {"r2": 1.0 - mse / var if var > 0 else 0.0, "mse": mse}

    def _fingerprint(self, problem) -> dict:
        """The settings a checkpoint must share with the run that resumes from it."""
        skip = {"verbose"} | ({"epochs"} if self.lr_schedule == "constant" else set())
        settings = {k: (v if isinstance(v, (int, float, str, bool, type(None))) else str(v))
                    for k, v in self.get_params().items() if k not in skip}
        fp = {"model": type(self).__name__, **settings, "n": problem.n_total, "d": problem.d, "k": problem.k,
              "world_size": problem.world_size, "simulate_ranks": problem.simulate_ranks,
              "dtype": str(self._dtype).removeprefix("torch.")}
        if problem.streamed:
            fp["stream"] = [problem.buffer_rows, problem.block_rows, problem.shuffle]
        if hasattr(self, "classes_"):
            fp["classes"] = [str(c) for c in self.classes_]
        return fp

    def _stream_problem(self, shards, comm, simulate_ranks, refit: bool = True):
        from .objective import StreamProblem
        if self.early_stopping and refit:
            raise ConfigError("early_stopping holds out rows in memory; with streamed data pass "
                              "eval_set=(X_val, y_val) instead")
        encode, k = self._stream_targets(shards, comm, refit)
        if not refit:                                    # evaluating the fitted model: its dtype, in order
            if shards.d != self.n_features_in_:
                raise DataError(f"{shards.name} has {shards.d} features; the model was fitted with "
                                f"{self.n_features_in_}")
            options = dict(dtype=self._params.W.dtype, device=self._params.W.device)
        else:
            self.n_features_in_ = shards.d
            if shards.feature_names is not None:
                self.feature_names_in_ = np.asarray(shards.feature_names, dtype=object)
            elif hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
            options = dict(dtype=self._dtype, device=self._device, simulate_ranks=simulate_ranks,
                           buffer_rows=shards.buffer_rows, block_rows=shards.block_rows, shuffle=shards.shuffle,
                           label_smoothing=getattr(self, "label_smoothing", 0.0))
        return StreamProblem(shards, encode, k, self._loss(), self.weight_decay, comm=comm, **options)

    def partial_fit(self, X, y, classes=None):
        """One more epoch on (X, y), continuing from the current parameters and solver state."""
        first = not hasattr(self, "_params")
        if first:
            self._check_settings()
        X, y = self._validate_Xy(X, y, reset=first)
        Y = self._targets(y, reset=first, classes=classes if first else None)
        params = (Params.zeros(X.shape[1], Y.shape[1], dtype=self._dtype, device=self._device)
                  if first else self._params)
        return self._run(X, Y, params, epochs=1, callbacks=None, eval_set=None, fresh=first)

    def _run(self, X, Y, params, *, epochs, callbacks, eval_set, fresh):
        return self._run_problem(self._problem(X, Y), params, epochs=epochs, callbacks=callbacks,
                                 eval_set=eval_set, fresh=fresh)

    def _run_problem(self, problem, params, *, epochs, callbacks, eval_set, fresh, checkpointer=None,
                     resume=None):
        cbs = list(callbacks or [])
        if self.early_stopping and fresh and epochs > 1:
            problem, val = self._split_validation(problem)
            cbs = [Evaluate(val), EarlyStopping("val_loss", patience=self.n_iter_no_change)] + cbs
        elif eval_set is not None:
            Xv, yv = self._validate_Xy(*eval_set, reset=False)
            cbs = [Evaluate(self._problem(Xv, self._targets(yv, reset=False)))] + cbs
        if self.verbose:
            from .progress import ProgressBar
            cbs.append(ProgressBar("epoch"))
        if fresh or not hasattr(self, "_solver"):
            self._solver = get_solver(self.solver)(self._solver_config())
            self.history_ = History()
        self._params = params
        start = 0 if fresh else len(self.history_)
        if resume is not None:
            self.history_ = History(resume.history)
        try:
            history = train(problem, params, self._solver, epochs=start + epochs, start_epoch=start,
                            callbacks=cbs, init=fresh, checkpointer=checkpointer, resume=resume)
        finally:
            self._finish(params)
        self.history_.extend(history)
        self.n_iter_ = len(self.history_)
        return self

    def _split_validation(self, problem: Problem):
        n = problem.n
        n_val = max(1, int(round(self.validation_fraction * n)))
        if n_val >= n:
            raise DataError(f"validation_fraction={self.validation_fraction} leaves no training data")
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed)).to(problem.device)
        tr, va = perm[n_val:], perm[:n_val]
        make = lambda idx: Problem(problem.X[idx], problem.Y[idx], problem.loss, problem.weight_decay)
        return make(tr), make(va)

    def _finish(self, params: Params):
        self._params = params
        W = params.W.detach().cpu().double().numpy()                    # (d, k)
        b = params.b.detach().cpu().double().numpy()                    # (k,)
        self.coef_, self.intercept_ = self._coef_layout(W, b)

    # --- prediction ----------------------------------------------------------------------
    def _decision(self, X) -> np.ndarray:
        check_is_fitted(self, "_params")
        X = self._validate_X(X, reset=False)
        Xt = as_tensor(X, self._params.W.dtype, self._params.W.device)
        Z = torch.addmm(self._params.b, Xt, self._params.W)              # (n, k)
        return Z.detach().cpu().double().numpy()

    # --- persistence ---------------------------------------------------------------------
    def save(self, path) -> None:
        """Write ``path/model.safetensors`` (W, b) and ``path/model.json`` (the card)."""
        from .persistence import save_model
        save_model(self, path)


class LinearRegression(RegressorMixin, _LinearModel):
    r"""Linear regression ``ŷ = X W + b`` with the half squared error.

    Parameters (keyword-only)
    -------------------------
    solver : {"exact", "sgd", "gd", "newton", "newton-cg", "lbfgs"}, default "exact"
        ``exact`` is the closed form (normal equations, Cholesky, float64).
    lr, batch_size, epochs, momentum, lr_schedule : SGD/GD settings (the book's
        defaults: lr=0.03, batch_size=10, epochs=3).
    weight_decay : float, L2 penalty (λ/2)||W||² (b unpenalised). tol : gradient tolerance
        of full-batch solvers. early_stopping, validation_fraction, n_iter_no_change :
        hold out a fraction and stop when its loss stops improving. seed : shuffling seed.
    device : "cpu", "cuda", "auto". dtype : None (float64 for exact/Newton/L-BFGS, float32
        for SGD/GD), "float32" or "float64". verbose : show a progress bar.

    Fitted: ``coef_`` (d,) or (m, d), ``intercept_`` float or (m,), ``n_iter_``, ``history_``.
    """

    def __init__(self, *, solver="exact", lr=0.03, batch_size=10, epochs=3, weight_decay=0.0,
                 momentum=0.0, lr_schedule="constant", tol=1e-6, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=5, seed=0, device="cpu", dtype=None,
                 verbose=0):
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

    def _targets(self, y, reset: bool, classes=None) -> torch.Tensor:
        y = np.asarray(y, dtype=np.float64)
        if reset:
            self._y_1d = y.ndim == 1
        Y = y.reshape(-1, 1) if y.ndim == 1 else y                        # (n, m)
        if not reset and hasattr(self, "_params") and Y.shape[1] != self._params.k:
            raise DataError(f"y has {Y.shape[1]} targets but the model was fitted with {self._params.k}")
        return as_tensor(Y, self._dtype, self._device)

    def _stream_targets(self, shards, comm, refit: bool = True):
        """(encode: raw target block → float64 tensor, k = 1)."""
        if refit:
            self._y_1d = True

        def encode(y: np.ndarray) -> torch.Tensor:
            try:
                return torch.from_numpy(np.asarray(y, dtype=np.float64))
            except (TypeError, ValueError):
                raise DataError(f"{shards.name}: the target column {shards.target_name!r} is not numeric; "
                                "LinearRegression needs numbers") from None
        return encode, 1

    def _coef_layout(self, W, b):
        if self._y_1d:
            return W[:, 0].copy(), float(b[0])
        return W.T.copy(), b.copy()

    def predict(self, X) -> np.ndarray:
        Z = self._decision(X)
        return Z[:, 0] if self._y_1d else Z


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

    def __init__(self, *, solver="sgd", loss="cross_entropy", lr=0.1, batch_size=256, epochs=10,
                 weight_decay=0.0, momentum=0.0, lr_schedule="constant", label_smoothing=0.0,
                 tol=1e-6, early_stopping=False, validation_fraction=0.1, n_iter_no_change=5,
                 seed=0, device="cpu", dtype=None, verbose=0):
        self.solver = solver
        self.loss = loss
        self.lr = lr
        self.batch_size = batch_size
        self.epochs = epochs
        self.weight_decay = weight_decay
        self.momentum = momentum
        self.lr_schedule = lr_schedule
        self.label_smoothing = label_smoothing
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.seed = seed
        self.device = device
        self.dtype = dtype
        self.verbose = verbose

    def _check_settings(self):
        super()._check_settings()
        loss = get_loss(self.loss)
        if not loss.classification:
            raise ConfigError(f"loss {self.loss!r} is not a classification loss; use cross_entropy, mse or kl")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"Invalid label_smoothing: {self.label_smoothing}; use a value in [0, 1)")

    def _loss(self):
        return get_loss(self.loss)

    def _targets(self, y, reset: bool, classes=None) -> torch.Tensor:
        """Labels → one-hot rows over ``classes_`` (all classes from ``classes`` when given, as in
        scikit-learn's partial_fit); probability rows pass through as soft targets."""
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] > 1:
            Y = self._soft_targets(y, reset)
        else:
            if y.ndim == 2:
                y = column_or_1d(y, warn=True)
            try:
                check_classification_targets(y)
            except ValueError as e:
                raise DataError(str(e)) from e
            if reset:
                self.classes_ = np.unique(y) if classes is None else np.unique(np.asarray(classes))
                if len(self.classes_) < 2:
                    raise DataError(f"{type(self).__name__} needs samples of at least 2 classes, "
                                    f"got 1 class ({self.classes_[0]!r})")
            Y = one_hot(self._encoder("y", self.classes_)(y), len(self.classes_), self._dtype)
        return smooth_labels(Y, self.label_smoothing).to(self._device)

    def _soft_targets(self, y: np.ndarray, reset: bool) -> torch.Tensor:
        y = np.asarray(y, dtype=np.float64)
        if not np.isfinite(y).all():
            raise DataError("soft targets contain NaN or Inf")
        if (y < 0).any():
            r = int(np.argwhere(y < 0)[0, 0])
            raise DataError(f"soft targets must be non-negative; row {r} has {y[r].min():g}")
        sums = y.sum(axis=1)
        bad = np.abs(sums - 1.0) > 1e-4
        if bad.any():
            r = int(np.argmax(bad))
            raise DataError(f"soft-target rows must sum to 1; row {r} sums to {sums[r]:g}")
        if reset:
            self.classes_ = np.arange(y.shape[1])
        elif y.shape[1] != len(self.classes_):
            raise DataError(f"soft targets have {y.shape[1]} columns but the model has {len(self.classes_)} classes")
        return torch.from_numpy(y).to(self._dtype)

    def _stream_targets(self, shards, comm, refit: bool = True):
        """(encode: raw label block → class indices (int64), k). The classes come from one pass
        over the target column (each rank scans its part; the sets are merged)."""
        from .data.stream import rank_range
        if not refit:
            return self._encoder(shards.name, self.classes_), len(self.classes_)
        rank, world = (comm.rank, comm.world_size) if comm is not None else (0, 1)
        lo, hi = rank_range(shards.n, rank, world)
        local = np.unique(np.concatenate([np.unique(y) for _, y in shards.blocks(lo, hi, 4096)]))
        if comm is not None and world > 1:
            local = np.unique(np.concatenate(comm.all_gather_object(local)))
        try:
            check_classification_targets(local)
        except ValueError as e:
            raise DataError(f"{shards.name}: {e}") from e
        self.classes_ = local
        if len(local) < 2:
            raise DataError(f"{type(self).__name__} needs samples of at least 2 classes, got 1 class "
                            f"({local[0]!r})")
        return self._encoder(shards.name, self.classes_), len(self.classes_)

    @staticmethod
    def _encoder(name: str, classes: np.ndarray):
        """labels → their indices in ``classes`` (int64 tensor); DataError naming unknown ones."""
        def encode(y: np.ndarray) -> torch.Tensor:
            idx = np.clip(np.searchsorted(classes, y), 0, len(classes) - 1)
            unknown = classes[idx] != y
            if unknown.any():
                raise DataError(f"{name} has labels not seen in fit: {np.unique(y[unknown])[:5].tolist()}")
            return torch.from_numpy(idx.astype(np.int64))
        return encode

    def _coef_layout(self, W, b):
        return W.T.copy(), b.copy()

    def decision_function(self, X) -> np.ndarray:
        """Logits Z (n, k); for two classes the log-odds Z₁ - Z₀ (n,), as scikit-learn expects."""
        Z = self._decision(X)
        return Z[:, 1] - Z[:, 0] if Z.shape[1] == 2 else Z

    def predict_proba(self, X) -> np.ndarray:
        """softmax(Z), rows sum to 1; shape (n, k)."""
        Z = torch.from_numpy(self._decision(X))
        return torch.softmax(Z, dim=1).numpy()

    def predict_log_proba(self, X) -> np.ndarray:
        return torch.log_softmax(torch.from_numpy(self._decision(X)), dim=1).numpy()

    def predict(self, X) -> np.ndarray:
        Z = self._decision(X)
        return self.classes_[Z.argmax(axis=1)]
