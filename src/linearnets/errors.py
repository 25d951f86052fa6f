"""The library's typed errors. Every error a user can cause is one of these.

All derive from :class:`LinearnetsError`; the ones about bad input also derive from
``ValueError`` so that scikit-learn's conventions (and ``except ValueError``) hold.
The CLI prints any of them as one line and exits with status 2.
"""

from __future__ import annotations

__all__ = [
    "LinearnetsError",
    "DataError",
    "FormatError",
    "ChecksumError",
    "DownloadError",
    "ModelFileError",
    "DivergenceError",
    "ConfigError",
    "CheckpointError",
    "DistributedError",
    "OutputError",
    "IllConditionedWarning",
    "ScaleWarning",
]


class LinearnetsError(Exception):
    """Base class of every error raised on purpose by linearnets."""


class ConfigError(LinearnetsError, ValueError):
    """A setting is invalid (unknown solver, negative learning rate, ...)."""


class DataError(LinearnetsError, ValueError):
    """Input data is unusable: NaN/Inf, mismatched lengths, wrong width, bad targets."""


class FormatError(DataError):
    """A file is not in the format it claims (truncated IDX, wrong magic, bad column)."""


class ChecksumError(DataError):
    """A downloaded or cached file does not have the expected SHA-256."""


class DownloadError(LinearnetsError, OSError):
    """A dataset could not be fetched; the message says where to put the files by hand."""


class ModelFileError(LinearnetsError, ValueError):
    """A saved model (model.json + model.safetensors) is missing, corrupt or inconsistent."""


class DivergenceError(LinearnetsError, ArithmeticError):
    """Training produced a non-finite or exploding loss.

    The model keeps the last parameters whose loss was finite. ``lr``, ``epoch`` and
    ``step`` tell where it happened.
    """

    def __init__(self, message: str, *, lr: float | None = None, epoch: int | None = None,
                 step: int | None = None, loss: float | None = None):
        super().__init__(message)
        self.lr, self.epoch, self.step, self.loss = lr, epoch, step, loss


class CheckpointError(LinearnetsError, ValueError):
    """A checkpoint is unreadable, or was written by a run with other settings."""


class DistributedError(LinearnetsError, RuntimeError):
    """A data-parallel run lost a rank (or could not start); the others stop instead of hanging."""


class OutputError(LinearnetsError, OSError):
    """An output cannot be written: a full disk, a read-only place, a path that is a file, an output
    folder in use by another run. The previous output is left as it was."""


class ScaleWarning(UserWarning):
    """Features on scales that differ by more than 10³, trained by SGD/GD without standardising."""


class IllConditionedWarning(UserWarning):
    """The normal equations were ill-conditioned or singular; a least-squares solve was used."""
