r"""Checkpoints: everything a run needs to continue exactly where it stopped.

One file per checkpoint, ``FOLDER/ckpt-EEEEEE-SSSSSSSSS.safetensors`` (E = epochs done,
S = steps done in the next epoch; 0 at an epoch boundary), holding

- tensors: the parameters ``W`` (d, k) and ``b`` (k,), and the solver's state
  (``solver.*``: SGD's momentum buffers, L-BFGS's curvature pairs, the closed form's moments);
- metadata (JSON): the position in the data (epoch, step), the sums of the current
  epoch so far (loss, hits, samples), the divergence guard's limit, the history of the
  finished epochs, and a *fingerprint* of the settings (solver, learning rate, batch size,
  seed, data size, world size, …). The random state needs no bytes: every epoch's shuffle
  is drawn from a generator seeded by (seed, epoch, rank) alone
  (:func:`~linearnets.data.shuffle.epoch_generator`), so (seed, epoch, step) *is* the
  state of the data order.

Written atomically (temporary file in the same folder, fsync, rename, fsync of the folder):
a crash leaves either the previous checkpoint or the new one, never half of one. The
newest ``keep`` checkpoints are kept. Loading verifies the file (format, JSON, shapes);
a damaged newest file is skipped with a warning for the next older one.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save

from ._io import atomic_write_bytes
from .errors import CheckpointError
from .params import Params
from .train import History, TrainState

__all__ = ["Checkpointer", "Checkpoint", "load_checkpoint", "load_latest", "list_checkpoints"]

FORMAT = "linearnets-checkpoint/1"
NAME = re.compile(r"^ckpt-(\d{6})-(\d{9})\.safetensors$")


@dataclass
class Checkpoint(TrainState):
    """A :class:`~linearnets.train.TrainState` read from a file, with its ``path`` and ``fingerprint``."""

    path: Path | None = None
    fingerprint: dict = field(default_factory=dict)


def _name(epoch: int, step: int) -> str:
    return f"ckpt-{epoch:06d}-{step:09d}.safetensors"


def list_checkpoints(folder) -> list[Path]:
    """Checkpoint files of ``folder``, newest first (by epoch, then step)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(tuple(map(int, m.groups())), p) for p in folder.iterdir() if (m := NAME.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


class Checkpointer:
    """Writes a :class:`~linearnets.train.TrainState` into ``folder`` every ``every_steps`` steps
    (0: epoch ends only) and at the end of every epoch. ``write=False`` (ranks other than 0)
    writes nothing."""

    def __init__(self, folder, *, fingerprint: dict, every_steps: int = 0, keep: int = 2,
                 write: bool = True):
        if int(every_steps) < 0:
            raise CheckpointError(f"checkpoint interval must be ≥ 0 steps, got {every_steps}")
        self.folder = Path(folder)
        self.fingerprint = fingerprint
        self.every_steps, self.keep, self.write = int(every_steps), max(1, int(keep)), write
        if write:
            self.folder.mkdir(parents=True, exist_ok=True)
            for stale in self.folder.glob(".ckpt-*.tmp"):      # left by a writer that was killed
                stale.unlink(missing_ok=True)

    def due(self, step: int) -> bool:
        return self.every_steps > 0 and step % self.every_steps == 0

    def save(self, state: TrainState) -> Path | None:
        if not self.write:
            return None
        tensors = {"W": state.params.W.detach().contiguous().cpu(), "b": state.params.b.detach().contiguous().cpu()}
        for key, t in state.solver_state.items():
            tensors[f"solver.{key}"] = t.detach().contiguous().cpu()
        meta = {"epoch": state.epoch, "step": state.step, "partial": state.partial, "history": list(state.history),
                "fingerprint": self.fingerprint, "guard_limit": state.guard_limit}
        blob = save(tensors, metadata={"format": FORMAT, "meta": json.dumps(meta, allow_nan=True)})
        path = self.folder / _name(state.epoch, state.step)
        atomic_write_bytes(path, blob)
        for old in list_checkpoints(self.folder)[self.keep:]:
            old.unlink(missing_ok=True)
        return path


def load_checkpoint(path) -> Checkpoint:
    """Read and verify one checkpoint file; :class:`CheckpointError` if it is not one."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta_raw = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as e:                        # any parse failure on untrusted bytes
        msg = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {msg})") from None
    if meta_raw.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a linearnets checkpoint (format {meta_raw.get('format')!r})")
    try:
        meta = json.loads(meta_raw["meta"])
        epoch, step = int(meta["epoch"]), int(meta["step"])
        history, partial, fingerprint = list(meta["history"]), dict(meta["partial"]), dict(meta["fingerprint"])
        limit = meta.get("guard_limit")
        limit = None if limit is None else float(limit)
        W, b = tensors["W"], tensors["b"]
    except Exception as e:
        raise CheckpointError(f"{path}: damaged checkpoint metadata ({type(e).__name__}: {e})") from None
    if epoch < 0 or step < 0 or W.ndim != 2 or b.ndim != 1 or W.shape[1] != b.shape[0] \
            or not all(isinstance(r, dict) for r in history):
        raise CheckpointError(f"{path}: inconsistent checkpoint (W {tuple(W.shape)}, b {tuple(b.shape)}, "
                              f"epoch {epoch}, step {step})")
    if not (torch.isfinite(W).all() and torch.isfinite(b).all()):
        raise CheckpointError(f"{path}: checkpoint parameters are not finite")
    state = {k.removeprefix("solver."): v for k, v in tensors.items() if k.startswith("solver.")}
    return Checkpoint(Params(W, b), epoch, step, partial, state, limit, History(history), path, fingerprint)


DATA_KEYS = ("data", "n", "d", "k", "classes")


def load_latest(folder, fingerprint: dict | None = None, validate=None) -> Checkpoint | None:
    """The newest usable checkpoint of ``folder`` (None if there is none).

    A damaged file — or one that ``validate(checkpoint)`` rejects with a CheckpointError (wrong
    shapes, a position past the epoch) — is skipped, with a warning, for the next older one. With
    ``fingerprint``, a checkpoint of other data or other settings raises :class:`CheckpointError`
    naming what differs.
    """
    for path in list_checkpoints(folder):
        try:
            ckpt = load_checkpoint(path)
            if validate is not None and (fingerprint is None or ckpt.fingerprint == fingerprint):
                validate(ckpt)
        except CheckpointError as e:
            warnings.warn(f"skipping an unusable checkpoint: {e}", RuntimeWarning, stacklevel=2)
            continue
        if fingerprint is not None:
            diff = [k for k in sorted(set(fingerprint) | set(ckpt.fingerprint))
                    if fingerprint.get(k) != ckpt.fingerprint.get(k)]
            data = [k for k in diff if k in DATA_KEYS]
            if data:
                shown = ", ".join(f"{k}: {ckpt.fingerprint.get(k)!r} then, {fingerprint.get(k)!r} now" for k in data)
                raise CheckpointError(f"{path} was written for other data ({shown}): the rows differ from the "
                                      f"ones it trained on; resume on the same data, or remove {Path(folder)} "
                                      "to start over")
            if diff:
                shown = ", ".join(f"{k}: {ckpt.fingerprint.get(k)!r} then, {fingerprint.get(k)!r} now"
                                  for k in diff[:3])
                raise CheckpointError(f"{path} was written by a run with other settings ({shown}); "
                                      f"resume with the same settings, or remove {Path(folder)} to start over")
        return ckpt
    return None
