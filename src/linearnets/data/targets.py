r"""The one encoder of targets: class labels, soft targets, label smoothing, regression values.

Training and evaluation use the *class-major* layout of the targets (the layout of the logits
``Zᵀ`` (k, m) that SGD and the full-batch passes compute):

* classification, hard labels: ``T`` = class indices (m,) int64 — the losses read them as one-hot
  rows without materialising them; with label smoothing ε, ``T = ((1 − ε)·onehot + ε/k)ᵀ`` (k, m);
* classification, soft targets (rows of probabilities, (m, k)): ``T = Yᵀ`` (k, m), smoothed likewise;
* regression: ``T = Yᵀ`` (k, m) for k outputs.

``labels`` (m,) int64 is the class counted as right for accuracy — the index of the label, or
the argmax of a soft-target row — and ``None`` for regression. Every path (arrays, streamed
shards, ranks, the CLI, the lab) encodes through :class:`Targets`, so a label is the same class
everywhere and a label the model never saw is an error everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError
from ..losses import one_hot, smooth_labels
from .arrays import as_tensor

__all__ = ["Targets", "dense_rows"]

SOFT_TOLERANCE = 1e-4            # |row sum − 1| allowed for soft targets


@dataclass(frozen=True)
class Targets:
    """How targets become ``(T, labels)``: ``task``, ``k`` outputs or classes, the ``classes``
    (sorted labels; for soft targets ``arange(k)``) and the label ``smoothing`` ε."""

    task: str                               # "classification" | "regression"
    k: int
    classes: np.ndarray | None = None
    smoothing: float = 0.0
    class_weights: tuple[float, ...] | None = None   # a weight per class (class_weight), None: all 1

    @property
    def classification(self) -> bool:
        return self.task == "classification"

    # --- learning the classes ---------------------------------------------------------------
    @classmethod
    def for_classes(cls, classes, smoothing: float = 0.0, name: str = "y") -> "Targets":
        """The encoder of the sorted unique ``classes`` (at least two)."""
        classes = np.unique(np.asarray(classes))
        if len(classes) < 2:
            shown = f" ({classes[0]!r})" if len(classes) else ""
            raise DataError(f"{name}: softmax regression needs samples of at least 2 classes, got "
                            f"{len(classes)} class{shown}")
        return cls("classification", len(classes), classes, float(smoothing))

    @classmethod
    def fit(cls, y: np.ndarray, task: str, *, classes=None, smoothing: float = 0.0, name: str = "y") -> "Targets":
        """The encoder that ``y`` defines: its classes (or ``classes`` when given, as in
        scikit-learn's ``partial_fit``), or its number of outputs."""
        y = np.asarray(y)
        if task == "regression":
            return cls("regression", 1 if y.ndim == 1 else y.shape[1])
        if is_soft(y):
            return cls("classification", y.shape[1], np.arange(y.shape[1]), float(smoothing))
        return cls.for_classes(np.unique(y) if classes is None else classes, smoothing, name)

    # --- encoding ------------------------------------------------------------------------------
    def encode(self, y: np.ndarray, dtype: torch.dtype, device=None, *, name: str = "y", unknown: str = "error"
               ) -> tuple[Tensor, Tensor | None]:
        """``y`` (m,) labels or values, or (m, k) soft targets / outputs → ``(T, labels)``.
        ``unknown="miss"``: labels the model was not fitted with become -1 (never predicted), for
        accuracy alone; ``"error"``: a DataError naming them (a loss of an unknown class is undefined)."""
        y = np.asarray(y)
        if self.classification and is_soft(y):
            P = self._soft(y, name)
            labels = torch.from_numpy(P.argmax(axis=1))
            T = smooth_labels(torch.from_numpy(P).to(dtype), self.smoothing).T.contiguous()
            return T.to(device), labels.to(device)
        if not self.classification and y.ndim == 2 and y.shape[1] != 1:
            if y.shape[1] != self.k:
                raise DataError(f"{name} has {y.shape[1]} target columns; the model has {self.k}")
            return as_tensor(_as_float(y, name).T, dtype, device), None
        return self.layout(self.column(y.reshape(-1) if y.ndim == 2 else y, name, unknown), dtype, device, name)

    def column(self, y: np.ndarray, name: str = "y", unknown: str = "error") -> Tensor:
        """One column of raw targets (m,) → class indices (int64) or values (float64), on the CPU."""
        if y.ndim != 1:
            raise DataError(f"{name}: targets must be one column, got shape {y.shape}")
        if not self.classification:
            return as_tensor(_as_float(y, name), torch.float64, "cpu")
        classes = self.classes
        try:
            idx = np.searchsorted(classes, y)
        except TypeError:                                      # e.g. str labels against int classes
            idx = np.zeros(len(y), dtype=np.intp)
            known = np.zeros(len(y), dtype=bool)
        else:
            idx = np.minimum(idx, len(classes) - 1)
            with np.errstate(all="ignore"):
                known = np.asarray(classes[idx] == y, dtype=bool)
        if not np.all(known):
            if unknown == "miss":
                idx = np.where(known, idx, -1)
            else:
                bad = np.unique(np.asarray(y[~known], dtype=object).astype(str))[:5].tolist()
                raise DataError(f"{name} has labels the model was not fitted with: {bad}; "
                                f"its classes are {classes[:10].tolist()}")
        return torch.from_numpy(idx.astype(np.int64))

    def weights(self, labels: Tensor | None, w: Tensor | None, dtype: torch.dtype) -> Tensor | None:
        """The rows' weights: sample weights ``w`` (or 1) times their class's weight; None when all 1."""
        if self.class_weights is None or labels is None:
            return w
        cw = torch.tensor(self.class_weights, dtype=dtype, device=labels.device)
        per_row = cw[labels.clamp(min=0)]
        return per_row if w is None else w * per_row

    def layout(self, t: Tensor, dtype: torch.dtype, device=None, name: str = "y") -> tuple[Tensor, Tensor | None]:
        """An encoded column (m,) (:meth:`column`) → ``(T, labels)`` in ``dtype`` on ``device``."""
        if not self.classification:
            if self.k != 1:
                raise DataError(f"{name}: one target column, but the model has {self.k} outputs")
            return t.to(device=device, dtype=dtype).view(1, -1), None
        labels = t.to(device)
        if self.smoothing and bool((labels >= 0).all()):
            return smooth_labels(one_hot(labels, self.k, dtype), self.smoothing).T.contiguous(), labels
        return labels, labels

    def _soft(self, y: np.ndarray, name: str) -> np.ndarray:
        P = _as_float(y, name)
        if P.shape[1] != self.k:
            raise DataError(f"{name}: soft targets have {P.shape[1]} columns but the model has {self.k} classes")
        if not np.isfinite(P).all():
            raise DataError(f"{name}: soft targets contain NaN or Inf")
        if (P < 0).any():
            r = int(np.argwhere(P < 0)[0, 0])
            raise DataError(f"{name}: soft targets must be non-negative; row {r} has {P[r].min():g}")
        sums = P.sum(axis=1)
        bad = np.abs(sums - 1.0) > SOFT_TOLERANCE
        if bad.any():
            r = int(np.argmax(bad))
            raise DataError(f"{name}: soft-target rows must sum to 1; row {r} sums to {sums[r]:g}")
        return P


def is_soft(y: np.ndarray) -> bool:
    """Rows of probabilities (n, k ≥ 2) rather than one column of labels."""
    return y.ndim == 2 and y.shape[1] > 1


def _as_float(y: np.ndarray, name: str) -> np.ndarray:
    try:
        return np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{name}: targets must be numbers") from None


def dense_rows(T: Tensor, k: int, dtype: torch.dtype) -> Tensor:
    """Class-major targets (labels (m,) or Tᵀ (k, m)) → probability / value rows (m, k)."""
    return one_hot(T, k, dtype) if T.ndim == 1 else T.T.to(dtype)
