"""Save and load fitted models: ``model.safetensors`` (W, b) + ``model.json`` (the card).

No pickle anywhere: safetensors holds raw tensors only, and the card is plain JSON.
The card records the task, classes, feature count, hyperparameters, final metrics and
library versions; loading checks the weights' shapes against it.
"""

from __future__ import annotations

import json
import math
import platform
from pathlib import Path

import numpy as np
import torch

from ._io import atomic_write_bytes, atomic_write_json
from .errors import LinearnetsError, ModelFileError
from .params import Params

FORMAT = "linearnets-model"
FORMAT_VERSION = 1
WEIGHTS, CARD = "model.safetensors", "model.json"


def _versions() -> dict:
    import safetensors
    import sklearn

    from . import __version__
    return {"linearnets": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "scikit-learn": sklearn.__version__, "safetensors": safetensors.__version__,
            "python": platform.python_version()}


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (np.generic,)):
        return value.item()
    return value


def save_model(model, path) -> Path:
    """Write the fitted ``model`` into folder ``path`` (created if needed). Returns the folder."""
    from safetensors.torch import save as st_save
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(model, "_params")
    path = Path(path)
    params: Params = model._params
    card = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "estimator": type(model).__name__,
        "task": model._task,
        "n_features": int(params.d), "n_outputs": int(params.k),
        "dtype": str(params.W.dtype).removeprefix("torch."),
        "y_1d": bool(getattr(model, "_y_1d", False)),
        "classes": model.classes_.tolist() if hasattr(model, "classes_") else None,
        "classes_dtype": model.classes_.dtype.str if hasattr(model, "classes_") else None,
        "feature_names": (model.feature_names_in_.tolist()
                          if hasattr(model, "feature_names_in_") else None),
        "hyperparameters": {k: _json_safe(v) for k, v in model.get_params().items()},
        "metrics": {"n_iter": int(model.n_iter_),
                    **{k: _json_safe(v) for k, v in (model.history_[-1] if model.history_ else {}).items()}},
        "versions": _versions(),
    }
    if card["classes_dtype"] is not None and card["classes_dtype"].startswith("|O"):
        card["classes_dtype"] = "object"
    blob = st_save({"W": params.W.detach().cpu().contiguous(), "b": params.b.detach().cpu().contiguous()},
                   metadata={"format": FORMAT})
    atomic_write_bytes(path / WEIGHTS, blob)
    atomic_write_json(path / CARD, card)
    return path


def load(path, *, device: str = "cpu"):
    """Load a model saved by ``model.save(path)``. Never executes code from the files."""
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

    from .estimators import LinearRegression, SoftmaxRegression, resolve_device

    path = Path(path)
    card_path, weights_path = path / CARD, path / WEIGHTS
    for p in (card_path, weights_path):
        if not p.is_file():
            raise ModelFileError(f"{p} not found: a saved model is a folder with {CARD} and {WEIGHTS}")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{card_path} is not valid JSON: {e}") from None
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        raise ModelFileError(f"{card_path} is not a linearnets model card (format != {FORMAT!r})")
    classes = {"LinearRegression": LinearRegression, "SoftmaxRegression": SoftmaxRegression}
    estimator = card.get("estimator")
    cls = classes.get(estimator) if isinstance(estimator, str) else None
    if cls is None:
        raise ModelFileError(f"{card_path}: unknown estimator {estimator!r}")
    try:
        tensors = st_load(weights_path.read_bytes())
    except (SafetensorError, ValueError, OSError) as e:
        raise ModelFileError(f"{weights_path} is not a valid safetensors file: {e}") from None
    try:
        d, k = int(card["n_features"]), int(card["n_outputs"])
        hyper = dict(card["hyperparameters"])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{card_path} is missing or has a bad field: {e}") from None
    W, b = tensors.get("W"), tensors.get("b")
    if W is None or b is None or tuple(W.shape) != (d, k) or tuple(b.shape) != (k,):
        got = {n: tuple(t.shape) for n, t in tensors.items()}
        raise ModelFileError(f"{weights_path}: weights {got} do not match the card "
                             f"(W ({d}, {k}), b ({k},))")
    valid = set(cls().get_params())
    unknown = set(hyper) - valid
    if unknown:
        raise ModelFileError(f"{card_path}: unknown hyperparameters {sorted(unknown)}")
    hyper["device"] = device
    try:
        model = cls(**hyper)
        model._check_settings()                       # the card's settings must be valid ones
        dev = resolve_device(device)
        model._device, model._dtype = dev, W.dtype
        model.n_features_in_ = d
        if card.get("feature_names"):
            names = card["feature_names"]
            if not isinstance(names, list) or len(names) != d:
                raise ModelFileError(f"{card_path}: 'feature_names' must list {d} names")
            model.feature_names_in_ = np.asarray([str(n) for n in names], dtype=object)
        if cls is SoftmaxRegression:
            if not isinstance(card.get("classes"), list) or len(card["classes"]) != k:
                raise ModelFileError(f"{card_path}: 'classes' must list {k} classes")
            dtype = card.get("classes_dtype") or None
            model.classes_ = np.asarray(card["classes"], dtype=object if dtype == "object" else dtype)
        else:
            model._y_1d = bool(card.get("y_1d", k == 1))
        model.history_ = []
        model.n_iter_ = int((card.get("metrics") or {}).get("n_iter", 0))
    except ModelFileError:
        raise
    except (LinearnetsError, TypeError, ValueError, KeyError, AttributeError) as e:
        raise ModelFileError(f"{card_path}: invalid card ({type(e).__name__}: {e})") from None
    if W.dtype not in (torch.float32, torch.float64) or b.dtype != W.dtype:
        raise ModelFileError(f"{weights_path}: weights must be float32 or float64, got {W.dtype}/{b.dtype}")
    model._finish(Params(W.to(dev), b.to(dev)))
    return model
