"""User data: CSV, NPY and Parquet files with a target column, and svmlight/libsvm files.

``read_table(path, target)`` returns a :class:`Dataset`. The target is a column name
(CSV/Parquet) or an integer index (any format; NPY and header-less CSV have no names); by
default the last column. Every other column must be numeric. Errors name the file and the column.

svmlight/libsvm files (``.svm``, ``.svmlight``, ``.libsvm``: ``label index:value …`` per line) are
read by scikit-learn's reader into a scipy CSR matrix — the features stay sparse.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pandas.api.types import is_bool_dtype, is_numeric_dtype
from sklearn.datasets import load_svmlight_file

from ..errors import DataError, FormatError
from .dataset import Dataset

SVMLIGHT_SUFFIXES = (".svm", ".svmlight", ".libsvm")
SUFFIXES = (".csv", ".npy", ".parquet", ".pq") + SVMLIGHT_SUFFIXES


def read_svmlight(path, *, n_features: int | None = None, zero_based="auto") -> Dataset:
    """An svmlight/libsvm file → a :class:`Dataset` whose ``X`` is a scipy CSR matrix (float64).

    ``n_features``: the width of X (a model's; by default the largest index seen). ``zero_based``:
    whether the first feature is index 0 or 1; "auto" as scikit-learn's reader decides it (one-based
    unless an index 0 appears) — the decision is returned as ``Dataset.zero_based``, so that the
    files a model is later applied to are read the same way."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        X, y = load_svmlight_file(str(path), dtype=np.float64, zero_based=True)
    except MemoryError:
        raise FormatError(f"{path}: the file declares more data than fits in memory") from None
    except Exception as e:                           # the parser reads untrusted bytes
        msg = (str(e).splitlines() or [type(e).__name__])[0]
        raise FormatError(f"{path}: cannot read as svmlight/libsvm ({type(e).__name__}: {msg})") from None
    X = X.tocsr()
    if X.shape[0] == 0:
        raise DataError(f"{path}: no rows")
    if not np.isfinite(X.data).all():
        raise DataError(f"{path}: holds NaN or infinite feature values; remove or impute them")
    if zero_based == "auto":
        zero_based = X.nnz == 0 or int(X.indices.min()) == 0
    if not zero_based:
        if X.nnz and int(X.indices.min()) == 0:
            raise DataError(f"{path}: holds feature index 0, but its indices are one-based (as the model's)")
        X = X[:, 1:] if X.shape[1] else X
    if n_features is not None:
        if X.shape[1] > n_features:
            raise DataError(f"{path}: uses feature index {X.shape[1] - 1 + (not zero_based)}, beyond the model's "
                            f"{n_features} features")
        X = sp.csr_matrix((X.data, X.indices, X.indptr), shape=(X.shape[0], n_features))
    if np.isfinite(y).all() and np.array_equal(y, np.round(y)) and np.abs(y).max(initial=0) < 2**53:
        y = y.astype(np.int64)                       # labels such as 1.0 / -1.0: classes 1 / -1
    return Dataset(X, y, name=path.stem, task=_task_of(y), zero_based=bool(zero_based))


def _is_number(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


def csv_has_header(path: Path) -> bool:
    """Whether a CSV's first row names its columns: it does unless every field of it is a number —
    except column numbers 0, 1, … (or 1, 2, …), which is how pandas names unnamed columns."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            first = f.readline()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    tokens = [t.strip().strip('"') for t in first.rstrip("\r\n").split(",")]
    if tokens in ([str(i) for i in range(len(tokens))], [str(i) for i in range(1, len(tokens) + 1)]):
        return True
    return not (tokens and all(t and _is_number(t) for t in tokens))


def _frame(path: Path, header: bool | None = None, text: bool = False):
    """A CSV/Parquet file as a DataFrame; ``text``: a CSV's cells as written (strings; missing: NaN),
    not as pandas infers them ("02139" stays "02139")."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise FormatError(f"{path}: unsupported file type {suffix!r}; use one of {', '.join(SUFFIXES)}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # mixed-type and parser warnings: we check columns
            if suffix != ".csv":
                return pd.read_parquet(path)
            if header is None:
                header = csv_has_header(path)
            df = pd.read_csv(path, header=0 if header else None, dtype=str if text else None)
            if not header:                           # columns named by their index, as NPY's are
                df.columns = [str(i) for i in range(df.shape[1])]
            return df
    except pd.errors.EmptyDataError as e:
        raise DataError(f"{path}: empty file ({e})") from None
    except MemoryError:
        raise FormatError(f"{path}: the file declares more data than fits in memory") from None
    except Exception as e:                           # any parser failure on untrusted bytes
        msg = (str(e).splitlines() or [type(e).__name__])[0]
        raise FormatError(f"{path}: cannot read as {suffix[1:]}: {type(e).__name__}: {msg}") from None


def _as_inferred(column: pd.Series) -> pd.Series:
    """A column of strings as pandas would have read it: numbers where every value is one."""
    try:
        return pd.to_numeric(column)
    except (ValueError, TypeError):
        return column


def _npy(path: Path) -> np.ndarray:
    try:
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as e:                           # the header is parsed from untrusted bytes
        msg = (str(e).splitlines() or [type(e).__name__])[0]
        raise FormatError(f"{path}: not a readable .npy file ({type(e).__name__}: {msg})") from None
    if a.ndim != 2:
        raise FormatError(f"{path}: expected a 2-D array (rows × columns), got shape {a.shape}")
    if a.dtype.kind not in "iuf":
        raise FormatError(f"{path}: expected an integer or floating-point array, got dtype {a.dtype}")
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


def read_table(path, target=None, *, has_target: bool = True, keep=(), header: bool | None = None,
               weight=None, numeric_only: bool = True, n_features: int | None = None, zero_based="auto") -> Dataset:
    """Read features and (when ``has_target``) a target column from a CSV/NPY/Parquet file.

    ``keep``: columns (names, or indices) copied aside into ``Dataset.kept`` — an ID to carry into
    predictions — and left out of the features. ``weight``: a column of sample weights (finite, ≥ 0),
    into ``Dataset.weight``, not a feature. ``header``: whether a CSV's first row names its
    columns (None: detected — a first row of numbers only is data; the columns are then named
    "0", "1", … as an NPY file's are). ``numeric_only=False``: the features are returned as a
    DataFrame, text and categorical columns included (for :class:`~linearnets.data.hashing.FeatureHashing`).
    ``n_features``, ``zero_based``: the width and index base of an svmlight file's rows (a model's).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.suffix.lower() in SVMLIGHT_SUFFIXES:
        if keep or weight is not None or target is not None:
            raise DataError(f"{path}: an svmlight file has its label first on each line and no named columns; "
                            "--target, --keep and --weight do not apply")
        return read_svmlight(path, n_features=n_features, zero_based=zero_based)
    if path.suffix.lower() == ".npy":
        a = _npy(path)
        if a.shape[0] == 0:
            raise DataError(f"{path}: no rows")
        df = pd.DataFrame(np.asarray(a), columns=[str(i) for i in range(a.shape[1])])
        named = False
    else:
        df = _frame(path, header, text=not numeric_only)
        named = path.suffix.lower() != ".csv" or not all(c == str(i) for i, c in enumerate(df.columns))
        if not numeric_only:                         # read as text: the target and weights as pandas would
            names = [str(x) for x in df.columns]
            inferred = {column_index(c, names, path) for c in [*keep] + ([weight] if weight is not None else [])}
            if has_target:
                inferred.add(column_index(target, names, path))
            for j in inferred:
                df[df.columns[j]] = _as_inferred(df.iloc[:, j])
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise DataError(f"{path}: no rows or no columns")
    names = [str(c) for c in df.columns]
    df.columns = names
    kept = {}
    for column in keep:
        j = column_index(column, names, path)
        kept[names[j]] = df.iloc[:, j].to_numpy()
    y, target_name = None, None
    if has_target:
        j = column_index(target, names, path)
        if names[j] in kept:
            raise DataError(f"{path}: column {names[j]!r} is both the target and a kept column")
        y, target_name = df.iloc[:, j].to_numpy(), names[j]
    weights, weight_name = None, None
    if weight is not None:
        j = column_index(weight, names, path)
        weight_name = names[j]
        if weight_name == target_name:
            raise DataError(f"{path}: column {weight_name!r} cannot be both the target and the weights")
        try:
            weights = df.iloc[:, j].to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(f"{path}: the weight column {weight_name!r} is not numeric") from None
        if not np.isfinite(weights).all() or (weights < 0).any():
            raise DataError(f"{path}: the weight column {weight_name!r} holds negative, missing or infinite values")
    df = df.drop(columns=[c for c in names if c in kept or c in (target_name, weight_name)])
    if df.shape[1] == 0:
        raise DataError(f"{path}: needs at least one feature column"
                        + (" besides the target" if has_target else "") + (" and the kept ones" if kept else ""))
    for col in (df.columns if numeric_only else ()):
        if not is_numeric_dtype(df[col]) or is_bool_dtype(df[col]):
            bad = df[col][~df[col].astype(str).str.match(r"^-?[\d.eE+-]+$")].head(1)
            example = f" (e.g. {bad.iloc[0]!r})" if len(bad) else ""
            raise FormatError(f"{path}: column {col!r} is not numeric{example}; "
                              "convert or drop it before training")
    X = df.to_numpy(dtype=np.float64) if numeric_only else df
    features = tuple(df.columns) if named else None
    if y is None:
        return Dataset(X, np.empty(0), name=path.stem, task="unknown", feature_names=features, kept=kept,
                       weight=weights)
    return Dataset(X, y, name=path.stem, task=_task_of(y), feature_names=features, target_name=target_name,
                   kept=kept, weight=weights)


def _task_of(y: np.ndarray) -> str:
    if y.dtype.kind in "OUSb":
        return "classification"
    if y.dtype.kind in "iu":
        return "classification"
    if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)) and len(np.unique(y)) <= 50:
        return "classification"
    return "regression"
