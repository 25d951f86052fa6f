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
from torch import Tensor

from ._io import atomic_folder
from .errors import ModelFileError
from .params import Params

__all__ = ["save_model", "write_model", "read_model", "WEIGHTS", "CARD"]

FORMAT = "linearnets-model"
FORMAT_VERSION = 1
WEIGHTS, CARD = "model.safetensors", "model.json"


def write_model(folder, params: Params, card: dict, extra: dict[str, Tensor] | None = None) -> None:
    """Write ``params`` and ``card`` into ``folder`` (a fresh folder: see :func:`save_model`).
    ``extra``: vectors of n_features float64 values kept beside W and b (a standardisation's mean
    and scale: a JSON list of millions of numbers would make the card too big to read back)."""
    folder = Path(folder)
    card = {"format": FORMAT, "format_version": FORMAT_VERSION, **card}
    tensors = {"W": params.W.detach().cpu().contiguous(), "b": params.b.detach().cpu().contiguous()}
    tensors.update({f"extra.{name}": t.detach().cpu().to(torch.float64).contiguous() for name, t in (extra or {}).items()})
    blob = st_save(tensors, metadata={"format": FORMAT})
    (folder / WEIGHTS).write_bytes(blob)
    (folder / CARD).write_text(json.dumps(card, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def save_model(path, params: Params, card: dict, extra: dict[str, Tensor] | None = None) -> Path:
    """Write ``params`` and ``card`` into folder ``path`` as a unit: the folder is replaced whole
    (:func:`~linearnets._io.atomic_folder`) — after any failure the previous model is still there."""
    with atomic_folder(path) as tmp:
        write_model(tmp, params, card, extra)
    return Path(path)


MAX_CARD_BYTES = 64 << 20        # a card with a million feature names is ~20 MB
MAX_CARD_DEPTH = 16              # a card nests a few levels; deeper is not ours
MAX_FEATURES, MAX_OUTPUTS = 1 << 31, 1 << 20
HEADER_SLACK = 1 << 20           # safetensors header and alignment, beyond the tensors' bytes
MAX_EXTRA = 2                    # extra vectors of n_features values (a standardisation's mean and scale)
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")


def read_card(path: Path) -> dict:
    """The JSON card, bounded in size and depth before it is parsed."""
    size = path.stat().st_size
    if size > MAX_CARD_BYTES:
        raise ModelFileError(f"{path} is {size} bytes; a model card is at most {MAX_CARD_BYTES}")
    text = path.read_bytes()
    depth = deepest = 0
    for ch in text.translate(None, _NOT_BRACKETS):        # (brackets inside strings count too: stricter)
        depth += 1 if ch in (0x5B, 0x7B) else -1
        deepest = max(deepest, depth)
    if deepest > MAX_CARD_DEPTH:
        raise ModelFileError(f"{path} nests {deepest} levels deep; a model card has at most {MAX_CARD_DEPTH}")
    try:
        card = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ModelFileError(f"{path} is not valid JSON: {str(e)[:200]}") from None
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a linearnets model card (format != {FORMAT!r})")
    return card


def _count(card: dict, key: str, high: int, path: Path) -> int:
    value = card.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise ModelFileError(f"{path}: {key!r} must be an integer from 1 to {high}, got {str(value)[:40]}")
    return value


def read_model(path) -> tuple[Params, dict, Path, dict[str, Tensor]]:
    """(parameters, card, card path, extra vectors) of the model saved in folder ``path``; ModelFileError when
    a file is missing, unreadable, out of range, non-finite or inconsistent with the other. The
    card is checked first, and the weights' file size against it, before the weights are read."""
    path = Path(path)
    card_path, weights_path = path / CARD, path / WEIGHTS
    for p in (card_path, weights_path):
        if not p.is_file():
            raise ModelFileError(f"{p} not found: a saved model is a folder with {CARD} and {WEIGHTS}")
    card = read_card(card_path)
    d, k = _count(card, "n_features", MAX_FEATURES, card_path), _count(card, "n_outputs", MAX_OUTPUTS, card_path)
    size, most = weights_path.stat().st_size, (d + 1) * k * 8 + MAX_EXTRA * d * 8 + HEADER_SLACK
    if size > most:
        raise ModelFileError(f"{weights_path} is {size} bytes; weights of {d} features × {k} outputs take at most "
                             f"{most}: not this model's file")
    try:
        tensors = st_load(weights_path.read_bytes())
    except (SafetensorError, ValueError, OSError) as e:
        raise ModelFileError(f"{weights_path} is not a valid safetensors file: {e}") from None
    W, b = tensors.pop("W", None), tensors.pop("b", None)
    extra = {name.removeprefix("extra."): t for name, t in tensors.items() if name.startswith("extra.")}
    if len(extra) != len(tensors) or len(extra) > MAX_EXTRA or any(
            tuple(t.shape) != (d,) or t.dtype != torch.float64 or not bool(torch.isfinite(t).all()) for t in extra.values()):
        raise ModelFileError(f"{weights_path}: tensors beside W and b must be at most {MAX_EXTRA} finite float64 "
                             f"vectors of {d} values named extra.*, got {sorted(tensors)[:5]}")
    if W is None or b is None or tuple(W.shape) != (d, k) or tuple(b.shape) != (k,):
        got = {n: None if t is None else tuple(t.shape) for n, t in (("W", W), ("b", b))}
        raise ModelFileError(f"{weights_path}: weights {got} do not match the card "
                             f"(W ({d}, {k}), b ({k},))")
    if W.dtype not in (torch.float32, torch.float64) or b.dtype != W.dtype:
        raise ModelFileError(f"{weights_path}: weights must be float32 or float64, got {W.dtype}/{b.dtype}")
    if not (torch.isfinite(W).all() and torch.isfinite(b).all()):
        raise ModelFileError(f"{weights_path}: the weights hold NaN or infinity; this model cannot predict")
    return Params(W, b), card, card_path, extra
