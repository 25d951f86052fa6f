"""What the playgrounds compute — the library itself, with no web code: checked settings, the
regression surface and solver paths, softmax training on digits, the saddle, the losses.

Every run reports through ``emit(kind, payload)`` and stops when ``cancelled()`` turns true
(checked at every step through the public step event), so a server can run it in a worker
thread, stream what it emits, and cancel it when a control changes or a tab closes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from sklearn.metrics import confusion_matrix

from .. import data
from ..errors import ConfigError, DivergenceError
from ..estimators import SoftmaxRegression
from ..lab import c07_saddle
from ..lab.base import LabConfig
from ..lab.tracking import problem_from
from ..losses import LOSSES
from ..params import Params
from ..solvers import SolverConfig, get_solver
from ..train import Callback, TrainState, train

MAX_PATH_POINTS = 3000     # a path is thinned to at most this many points (2 M updates would hang a browser)


class Cancelled(Exception):
    """Raised from a step event when the run was made obsolete (a new setting, stop, a closed tab)."""


# --- limits, enforced on the server ------------------------------------------------------------

@dataclass(frozen=True)
class Limit:
    low: float
    high: float
    integer: bool = False


LIMITS = {
    "n": Limit(10, 10_000, integer=True),
    "noise": Limit(0.0, 10.0),
    "lr": Limit(1e-6, 100.0),
    "momentum": Limit(0.0, 0.99),
    "batch_size": Limit(1, 10_000, integer=True),
    "epochs": Limit(1, 200, integer=True),
    "p_true": Limit(1e-4, 1 - 1e-4),
    "classes": Limit(2, 100, integer=True),
    "start": Limit(-2.5, 2.5),
}
CHOICES = {
    "regression_solver": ("gd", "sgd", "momentum", "newton"),
    "softmax_solver": ("sgd", "gd", "lbfgs", "newton"),
    "loss": ("cross_entropy", "mse"),
}


def checked(name: str, value, limit: str | None = None):
    """``value`` as a number within ``LIMITS[limit or name]``, or a :class:`ConfigError` that says
    what is allowed — the message the page shows."""
    lim = LIMITS[limit or name]
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, not {value!r}") from None
    if not np.isfinite(x) or not lim.low <= x <= lim.high:
        raise ConfigError(f"{name} = {value} is out of range: choose {name} in [{lim.low:g}, {lim.high:g}]")
    if lim.integer:
        if x != int(x):
            raise ConfigError(f"{name} must be a whole number, not {value}")
        return int(x)
    return x


def choice(name: str, value: str, kind: str | None = None) -> str:
    allowed = CHOICES[kind or name]
    if value not in allowed:
        raise ConfigError(f"{name} = {value!r} is not one of {', '.join(allowed)}")
    return value


class _Step(Callback):
    """Calls ``fn(params)`` after every update — every minibatch step, or every iteration of a
    full-batch solver (its epoch) — and raises :class:`Cancelled` when the run is obsolete."""

    def __init__(self, fn, cancelled, minibatch: bool):
        self.fn, self.cancelled, self.minibatch = fn, cancelled, minibatch

    def on_step(self, state, step):
        if self.cancelled():
            raise Cancelled
        if self.minibatch:
            self.fn(step.params)

    def on_epoch(self, state, record):
        if self.cancelled():
            raise Cancelled
        if not self.minibatch:
            self.fn(state.params)


# --- playground 1: linear regression on the book's data (C1, C2) -------------------------------

@dataclass
class Surface:
    """The book's problem F(w, b) = ½·mean(Xw + b − y)² and its loss surface over (w₁, w₂) at b*."""
    problem: object
    optimum: np.ndarray         # (w₁*, w₂*, b*)
    lambda_max: float           # largest eigenvalue of the Hessian over (w, b)
    w1: np.ndarray              # grid (g,)
    w2: np.ndarray              # grid (g,)
    F: np.ndarray               # (g, g): F(w₁, w₂, b*), rows over w₂

    @property
    def stable_lr(self) -> float:
        """Gradient descent converges for lr < 2/λ_max and diverges above it (C2)."""
        return 2.0 / self.lambda_max


def regression_surface(n: int = 1000, noise: float = 0.01, seed: int = 0, grid: int = 60) -> Surface:
    """The surface of these settings, computed once (the same object however the arguments are passed)."""
    return _regression_surface(int(n), float(noise), int(seed), int(grid))


@lru_cache(maxsize=32)
def _regression_surface(n: int, noise: float, seed: int, grid: int) -> Surface:
    ds = data.synthetic_regression(n=n, noise=noise, seed=seed, dtype=np.float64)
    problem = problem_from(ds.X, ds.y, loss="squared", dtype=torch.float64)
    state = TrainState(Params.zeros(2, 1, dtype=torch.float64))
    train(problem.source, problem.objective, get_solver("exact")(SolverConfig(epochs=1)), state, epochs=1,
          warn_unconverged=False)
    opt = state.params
    H = problem.hessian(opt)
    lam = float(torch.linalg.eigvalsh(H).max())
    w_opt = np.array([float(opt.W[0, 0]), float(opt.W[1, 0]), float(opt.b[0])])
    w1 = np.linspace(w_opt[0] - 4.5, w_opt[0] + 4.5, grid)
    w2 = np.linspace(w_opt[1] - 4.5, w_opt[1] + 4.5, grid)
    # F(w, b*) = ½(wᵀSw − 2wᵀ(c − b*·m) + mean(y²) − 2b*·mean(y) + b*²) with S = XᵀX/n, c = Xᵀy/n, m = mean x:
    # a cost independent of n
    X, y, b = np.asarray(ds.X, dtype=np.float64), np.asarray(ds.y, dtype=np.float64), w_opt[2]
    S, c, m = X.T @ X / len(y), X.T @ y / len(y), X.mean(axis=0)
    A, B = np.meshgrid(w1, w2)
    Wg = np.stack([A.ravel(), B.ravel()])                                          # (2, g²)
    quad = np.einsum("ig,ij,jg->g", Wg, S, Wg)
    F = (0.5 * (quad - 2 * (c - b * m) @ Wg + np.mean(y * y) - 2 * b * y.mean() + b * b)).reshape(grid, grid)
    F = np.maximum(F, 0.0)
    return Surface(problem, w_opt, lam, w1, w2, F)


def regression_run(surface: Surface, *, solver: str, lr: float, batch_size: int, momentum: float,
                   epochs: int, seed: int, start=(-1.5, 1.0), emit, cancelled) -> dict:
    """Train from ``start`` (w₁, w₂; b = 0) with ``solver`` and emit the path: ``emit("points",
    {"w1": [...], "w2": [...], "loss": [...]})`` every few steps. Returns the summary: steps, the end
    point, its distance to the optimum, and ``diverged`` with the guard's message (the path then
    ends at the last finite parameters)."""
    problem = surface.problem
    name = {"momentum": "sgd"}.get(solver, solver)
    cfg = SolverConfig(lr=lr, batch_size=batch_size if solver in ("sgd", "momentum") else problem.n_total,
                       momentum=momentum if solver == "momentum" else 0.0, epochs=epochs, seed=seed, tol=1e-12)
    state = TrainState(Params(torch.tensor([[start[0]], [start[1]]], dtype=torch.float64),
                              torch.zeros(1, dtype=torch.float64)))
    buffer = {"w1": [float(start[0])], "w2": [float(start[1])], "loss": [float(problem.value(state.params))]}
    last = {"t": time.perf_counter(), "steps": 0}
    minibatch = solver in ("sgd", "momentum")
    updates = epochs * (-(-problem.n_total // cfg.batch_size) if minibatch else 1)
    every = max(1, -(-updates // MAX_PATH_POINTS))           # draw at most MAX_PATH_POINTS points

    def flush():
        if buffer["w1"]:
            emit("points", {k: list(v) for k, v in buffer.items()})
            for v in buffer.values():
                v.clear()

    def on_update(params):
        last["steps"] += 1
        if last["steps"] % every and last["steps"] != updates:
            return
        W = params.W
        loss = float(problem.value(params))
        if not np.isfinite(loss):
            return                                               # the guard stops the run on this step
        buffer["w1"].append(float(W[0, 0]))
        buffer["w2"].append(float(W[1, 0]))
        buffer["loss"].append(loss)
        if time.perf_counter() - last["t"] > 0.03:
            flush()
            last["t"] = time.perf_counter()

    diverged = None
    try:
        train(problem.source, problem.objective, get_solver(name)(cfg), state, epochs=epochs,
              callbacks=[_Step(on_update, cancelled, minibatch)], warn_unconverged=False)
    except DivergenceError as e:
        diverged = str(e)
    flush()
    end = np.array([float(state.params.W[0, 0]), float(state.params.W[1, 0]), float(state.params.b[0])])
    distance = float(np.linalg.norm(end - surface.optimum)) if np.all(np.isfinite(end)) else None
    return {"steps": last["steps"], "end": end.tolist(), "distance_to_optimum": distance,
            "diverged": diverged, "stable_lr": surface.stable_lr}


# --- playground 2: softmax regression on digits (C3, C4, C9) -----------------------------------

def digits_split(seed: int = 0):
    """The lab's digits split (C3, C4, C9 use the same): (X_train, y_train, X_test, y_test), loaded once."""
    return _digits_split(int(seed))


@lru_cache(maxsize=1)
def _digits_split(seed: int):
    return LabConfig(dataset="digits", seed=seed).classification[:4]


def softmax_run(*, solver: str, loss: str, lr: float | str, batch_size: int, epochs: int, seed: int,
                emit, cancelled) -> dict:
    """Softmax regression on digits (1 347 training / 450 test images): ``emit("epoch", {...})``
    after every epoch with the training loss and accuracy, the test accuracy, the seconds since
    the start and samples/s; returns the confusion matrix and up to 16 misclassified test images
    (8×8, row 0 at the top, 1 = ink)."""
    Xtr, ytr, Xte, yte = digits_split(seed)
    model = SoftmaxRegression(solver=solver, loss=loss, lr=lr, batch_size=batch_size, epochs=epochs, seed=seed,
                              tol=1e-8)
    clock = {"t0": time.perf_counter(), "samples": 0}

    class Live(Callback):
        def on_step(self, state, step):
            if cancelled():
                raise Cancelled
            clock["samples"] += step.samples

        def on_epoch(self, state, record):
            if cancelled():                                       # full-batch solvers have no steps
                raise Cancelled
            seconds = time.perf_counter() - clock["t0"]
            emit("epoch", {"epoch": record["epoch"], "loss": record["loss"], "accuracy": record.get("accuracy"),
                           "test_accuracy": record.get("val_accuracy"), "seconds": seconds,
                           "samples_per_s": clock["samples"] / seconds if seconds > 0 else None})

    diverged = None
    try:
        model.fit(Xtr, ytr, eval_set=(Xte, yte), callbacks=[Live()])
    except DivergenceError as e:
        diverged = str(e)
    if diverged is not None:
        return {"diverged": diverged}
    pred = model.predict(Xte)
    cm = confusion_matrix(yte, pred, labels=model.classes_)
    wrong = np.flatnonzero(pred != yte)[:16]
    return {"diverged": None, "test_accuracy": float((pred == yte).mean()), "confusion": cm.tolist(),
            "lr": float(model.lr_), "wrong_images": [Xte[i].reshape(8, 8).tolist() for i in wrong],
            "wrong_true": yte[wrong].tolist(), "wrong_pred": pred[wrong].tolist()}


# --- playground 3: the saddle (C7) -------------------------------------------------------------

def saddle_surface(grid: int = 80):
    u = np.linspace(-2, 2, grid)
    v = np.linspace(-2.5, 2.5, grid)
    U, V = np.meshgrid(u, v)
    return u, v, c07_saddle.F((U, V))


def saddle_paths(start, seed: int = 0) -> dict:
    """Newton, gradient descent and SGD from ``start`` on C7's F(u, v) = u² − v² + v⁴/4 (a finite sum
    with zero-mean noise): each path as (u, v) lists, and where each ends (saddle or minimum)."""
    t = (checked("u", start[0], "start"), checked("v", start[1], "start"))
    paths = {"newton": c07_saddle.newton(t), "gd": c07_saddle.gd(t), "sgd": c07_saddle.sgd(t, seed)}
    out = {}
    for name, p in paths.items():
        p = p[np.all(np.isfinite(p), axis=1)]
        end = p[-1]
        where = "saddle" if np.abs(end).max() < 1e-3 else "minimum" if abs(abs(end[1]) - np.sqrt(2)) < 0.05 else "elsewhere"
        out[name] = {"u": p[:, 0].tolist(), "v": p[:, 1].tolist(), "end": end.tolist(), "ends_at": where,
                     "F_end": float(c07_saddle.F(end))}
    return out


# --- playground 4: the losses (C10, C11) -------------------------------------------------------

def loss_values(p_true: float, classes: int = 3, others: str = "uniform", target: str = "one-hot") -> dict:
    """Cross-entropy, MSE on softmax (½‖ŷ − y‖²) and KL divergence at the prediction ŷ whose true
    class (index 0) has probability ``p_true`` and the rest share 1 − p_true (``uniform``) or sit
    on one class (``one``), with their gradients w.r.t. the logits. ``target``: one-hot, or
    label-smoothed (ε = 0.1), where KL = CE − H(P) and the gradients stay equal."""
    k = checked("classes", classes)
    p = checked("p_true", p_true)
    if others == "uniform":
        q = np.full(k, (1 - p) / (k - 1))
    elif others == "one":
        q = np.full(k, 1e-6)
        q[1] = 1 - p - 1e-6 * (k - 2)
    else:
        raise ConfigError(f"others = {others!r} is not one of uniform, one")
    q[0] = p
    Z = torch.as_tensor(np.log(q)[None, :], dtype=torch.float64)
    Y = torch.zeros(1, k, dtype=torch.float64)
    Y[0, 0] = 1.0
    if target == "smoothed":
        Y = Y * 0.9 + 0.1 / k
    out = {"p": q.tolist(), "target": Y[0].tolist()}
    for name in ("cross_entropy", "mse", "kl"):
        value, grad = LOSSES[name].value_and_grad(Z, Y)
        out[name] = {"value": float(value), "grad": grad[0].tolist(), "grad_norm": float(grad.norm())}
    return out


def loss_curves(classes: int = 3, target: str = "one-hot") -> dict:
    """Each loss and its gradient norm over p_true from 1e-3 to 0.999 (others uniform)."""
    ps = np.concatenate([np.logspace(-3, -0.31, 40), 1 - np.logspace(-0.31, -3, 40)[1:]])
    rows = [loss_values(float(p), classes, "uniform", target) for p in ps]
    return {"p": ps.tolist(), **{f"{n}_{q}": [r[n][q] for r in rows] for n in ("cross_entropy", "mse", "kl")
                                for q in ("value", "grad_norm")}}
