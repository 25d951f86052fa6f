"""scikit-learn's bundled datasets: they ship with the package, so they work offline."""

from __future__ import annotations

import numpy as np
from sklearn import datasets

from .dataset import Dataset


def load_digits(*, scaled: bool = True) -> Dataset:
    """1797 handwritten digits, 8×8 pixels → 10 classes. ``scaled``: pixels in [0, 1] (÷16)."""
    b = datasets.load_digits()
    X = b.data / 16.0 if scaled else b.data.astype(np.float64)
    return Dataset(X, b.target.astype(np.int64), name="digits", task="classification",
                   class_names=tuple(str(c) for c in range(10)), image_shape=(8, 8),
                   feature_names=tuple(f"pixel_{i}" for i in range(64)), target_name="digit")


def load_diabetes() -> Dataset:
    """442 patients, 10 standardised features → disease progression after one year (regression)."""
    b = datasets.load_diabetes()
    return Dataset(b.data, b.target.astype(np.float64), name="diabetes", task="regression",
                   feature_names=tuple(b.feature_names), target_name="progression")
