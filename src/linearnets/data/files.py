"""User data: CSV, NPY and Parquet files with a target column.

``read_table(path, target)`` returns a :class:`Dataset`. The target is a column name
(CSV/Parquet) or an integer index (any format; NPY has no names); by default the last
column. Every other column must be numeric. Errors name the file and the column.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from ..errors import DataError, FormatError
from .dataset import Dataset

SUFFIXES = (".csv", ".npy", ".parquet", ".pq")


def _frame(path: Path):
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise FormatError(f"{path}: unsupported file type {suffix!r}; use one of {', '.join(SUFFIXES)}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # mixed-type and parser warnings: we check columns
            return pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except pd.errors.EmptyDataError as e:
        raise DataError(f"{path}: empty file ({e})") from None
    except MemoryError:
        raise FormatError(f"{path}: the file declares more data than fits in memory") from None
    except Exception as e:                           # any parser failure on untrusted bytes
        msg = (str(e).splitlines() or [type(e).__name__])[0]
        raise FormatError(f"{path}: cannot read as {suffix[1:]}: {type(e).__name__}: {msg}") from None


def _npy(path: Path) -> np.ndarray:
    try:
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as e:                           # the header is parsed from untrusted bytes
        msg = (str(e).splitlines() or [type(e).__name__])[0]
        raise FormatError(f"{path}: not a readable .npy file ({type(e).__name__}: {msg})") from None
    if a.ndim != 2:
        raise FormatError(f"{path}: expected a 2-D array (rows × columns), got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number):
        raise FormatError(f"{path}: expected a numeric array, got dtype {a.dtype}")
    return a


def column_index(target, names: list[str], path: Path) -> int:
    if target is None:
        return len(names) - 1
    if isinstance(target, str) and target in names:
        return names.index(target)
    try:
        i = int(target)
    except (TypeError, ValueError):
        raise DataError(f"{path}: no column {target!r}; columns are {', '.join(names[:20])}") from None
    if not -len(names) <= i < len(names):
        raise DataError(f"{path}: column index {i} out of range for {len(names)} columns")
    return i % len(names)


def read_table(path, target=None, *, has_target: bool = True) -> Dataset:
    """Read features and (when ``has_target``) a target column from a CSV/NPY/Parquet file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.suffix.lower() == ".npy":
        a = _npy(path)
        names = [str(i) for i in range(a.shape[1])]
        if a.shape[0] == 0:
            raise DataError(f"{path}: no rows")
        if not has_target:
            return Dataset(np.asarray(a), np.empty(0), name=path.stem, task="unknown")
        j = column_index(target, names, path)
        X = np.asarray(np.delete(a, j, axis=1), dtype=np.float64) if a.shape[1] > 1 else None
        if X is None:
            raise DataError(f"{path}: needs at least one feature column besides the target")
        y = np.asarray(a[:, j])
        return Dataset(X, y, name=path.stem, task=_task_of(y), target_name=str(j))
    df = _frame(path)
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise DataError(f"{path}: no rows or no columns")
    names = [str(c) for c in df.columns]
    df.columns = names
    y = None
    if has_target:
        j = column_index(target, names, path)
        y = df.iloc[:, j].to_numpy()
        df = df.drop(columns=names[j])
        if df.shape[1] == 0:
            raise DataError(f"{path}: needs at least one feature column besides the target")
    for col in df.columns:
        if not is_numeric_dtype(df[col]) or is_bool_dtype(df[col]):
            bad = df[col][~df[col].astype(str).str.match(r"^-?[\d.eE+-]+$")].head(1)
            example = f" (e.g. {bad.iloc[0]!r})" if len(bad) else ""
            raise FormatError(f"{path}: column {col!r} is not numeric{example}; "
                              "convert or drop it before training")
    X = df.to_numpy(dtype=np.float64)
    if y is None:
        return Dataset(X, np.empty(0), name=path.stem, task="unknown", feature_names=tuple(df.columns))
    return Dataset(X, y, name=path.stem, task=_task_of(y), feature_names=tuple(df.columns),
                   target_name=names[j])


def _task_of(y: np.ndarray) -> str:
    if y.dtype.kind in "OUSb":
        return "classification"
    if y.dtype.kind in "iu":
        return "classification"
    if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)) and len(np.unique(y)) <= 50:
        return "classification"
    return "regression"
