"""Save and load a model's files: ``model.safetensors`` (W, b) + ``model.json`` (the card).

This module reads and writes parameters and a card only; what the card means (an estimator,
its classes, its settings) is the estimators' business (:func:`linearnets.load`).
No pickle anywhere: safetensors holds raw tensors only, and the card is plain JSON.
Loading checks the format and the weights' shapes and dtype against the card.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ._io import atomic_write_bytes, atomic_write_json
from .errors import ModelFileError
from .params import Params

__all__ = ["save_model", "read_model", "WEIGHTS", "CARD"]

FORMAT = "linearnets-model"
FORMAT_VERSION = 1
WEIGHTS, CARD = "model.safetensors", "model.json"


def save_model(path, params: Params, card: dict) -> Path:
    """Write ``params`` and ``card`` into folder ``path`` (created if needed). Returns the folder."""
    path = Path(path)
    card = {"format": FORMAT, "format_version": FORMAT_VERSION, **card}
    blob = st_save({"W": params.W.detach().cpu().contiguous(), "b": params.b.detach().cpu().contiguous()},
                   metadata={"format": FORMAT})
    atomic_write_bytes(path / WEIGHTS, blob)
    atomic_write_json(path / CARD, card)
    return path


def read_model(path) -> tuple[Params, dict, Path]:
    """(parameters, card, card path) of the model saved in folder ``path``; ModelFileError when
    a file is missing, unreadable or inconsistent with the other."""
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
    try:
        tensors = st_load(weights_path.read_bytes())
    except (SafetensorError, ValueError, OSError) as e:
        raise ModelFileError(f"{weights_path} is not a valid safetensors file: {e}") from None
    try:
        d, k = int(card["n_features"]), int(card["n_outputs"])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{card_path} is missing or has a bad field: {e}") from None
    W, b = tensors.get("W"), tensors.get("b")
    if W is None or b is None or tuple(W.shape) != (d, k) or tuple(b.shape) != (k,):
        got = {n: tuple(t.shape) for n, t in tensors.items()}
        raise ModelFileError(f"{weights_path}: weights {got} do not match the card "
                             f"(W ({d}, {k}), b ({k},))")
    if W.dtype not in (torch.float32, torch.float64) or b.dtype != W.dtype:
        raise ModelFileError(f"{weights_path}: weights must be float32 or float64, got {W.dtype}/{b.dtype}")
    return Params(W, b), card, card_path
