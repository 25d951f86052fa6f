"""NumPy → torch without surprises."""

from __future__ import annotations

import warnings

import numpy as np
import torch

__all__ = ["as_tensor"]


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
