"""The in-memory dataset record every loader returns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Dataset:
    """Features ``X`` (n, d), targets ``y`` (n,) or (n, m), and what describes them.

    Unpacks like a pair: ``X, y = load_digits()``.
    """

    X: np.ndarray
    y: np.ndarray
    name: str
    task: str                                   # "classification" | "regression"
    class_names: tuple[str, ...] | None = None
    image_shape: tuple[int, int] | None = None
    feature_names: tuple[str, ...] | None = None
    target_name: str | None = None
    kept: dict | None = None                    # columns copied aside (e.g. an ID), not features
    weight: np.ndarray | None = None            # sample weights (n,) from a weight column
    zero_based: bool | None = None              # svmlight files: whether feature indices start at 0

    def __iter__(self):
        yield self.X
        yield self.y

    def __len__(self) -> int:
        return 2

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def d(self) -> int:
        return self.X.shape[1]
