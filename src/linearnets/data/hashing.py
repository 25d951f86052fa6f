r"""Feature hashing: raw text and categorical columns → sparse features (``--hash-features N``).

Each row becomes a bag of named features, hashed by scikit-learn's :class:`FeatureHasher`
(MurmurHash3, a signed hash: collisions cancel on average) into N columns::

    numeric column c     "c"          → (value − mean) / std  (mean and std of the training file)
    categorical column c "c=value"    → 1                      (the value as written: "02139")
    text column c        "c:token"    → the token's count (lower-cased words of 2+ letters/digits,
                                         scikit-learn's default token pattern)

A column is numeric when every value in the training file is a number, text when some value holds
whitespace, categorical otherwise. :class:`FeatureHashing` is learned on the training file (which
columns are which, and the numeric columns' mean and std), saved in the model card, and applied
unchanged to the files a model predicts on. Numeric columns are standardised here because hashed
features are scaled, never centred (centring would densify them): a raw column such as a year would
otherwise dwarf every other feature.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pandas.api.types import is_bool_dtype, is_numeric_dtype
from sklearn.feature_extraction import FeatureHasher

from ..errors import DataError, ModelFileError

__all__ = ["FeatureHashing"]

TOKEN = re.compile(r"(?u)\b\w\w+\b")           # scikit-learn's default token_pattern
MAX_FEATURES = 1 << 28


@dataclass(frozen=True)
class FeatureHashing:
    """Which columns are numeric, categorical or text, and the number of hashed features N."""

    n_features: int
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    text: tuple[str, ...] = ()
    moments: tuple[tuple[float, float], ...] = ()          # (mean, std) of each numeric column

    @classmethod
    def learn(cls, frame: pd.DataFrame, n_features: int) -> "FeatureHashing":
        """The kind of every column of ``frame`` (the features of a training file), and the mean and
        std of the numeric ones."""
        if isinstance(n_features, bool) or not isinstance(n_features, (int, np.integer)) or \
                not 1 <= int(n_features) <= MAX_FEATURES:
            raise DataError(f"--hash-features {n_features!r}: use a number of features in [1, 2^28], e.g. 1048576")
        numeric, categorical, text, moments = [], [], [], []
        for name in frame.columns:
            column = frame[name]
            values = _numbers(column)
            if values is not None and len(values):
                numeric.append(str(name))
                std = float(values.std())
                moments.append((float(values.mean()), std if std > 0 else 1.0))
            elif column.dropna().astype(str).str.contains(r"\s").any():
                text.append(str(name))
            else:
                categorical.append(str(name))
        return cls(int(n_features), tuple(numeric), tuple(categorical), tuple(text), tuple(moments))

    def columns(self) -> tuple[str, ...]:
        return self.numeric + self.categorical + self.text

    def transform(self, frame: pd.DataFrame) -> sp.csr_matrix:
        """The hashed features of ``frame``'s rows: a CSR matrix (n, N), float64."""
        missing = [c for c in self.columns() if c not in frame.columns]
        if missing:
            raise DataError(f"the data lacks the hashed columns {missing[:5]} the model was trained on")
        numeric = {}
        for c, (mean, std) in zip(self.numeric, self.moments or [(0.0, 1.0)] * len(self.numeric)):
            values = pd.to_numeric(frame[c], errors="coerce").to_numpy(np.float64)
            if not np.isfinite(values).all():
                raise DataError(f"numeric column {c!r} holds missing, non-numeric or infinite values; "
                                "impute or drop them before hashing")
            numeric[c] = (values - mean) / std
        categorical = {c: frame[c].to_numpy(object) for c in self.categorical}
        text = {c: frame[c].to_numpy(object) for c in self.text}

        def rows():
            for i in range(len(frame)):
                bag: dict[str, float] = {}
                for c, values in numeric.items():
                    if values[i]:
                        bag[c] = values[i]
                for c, values in categorical.items():
                    v = values[i]
                    if not _missing(v):
                        bag[f"{c}={_token(v)}"] = 1.0
                for c, values in text.items():
                    v = values[i]
                    if not _missing(v):
                        for token, count in Counter(TOKEN.findall(str(v).lower())).items():
                            bag[f"{c}:{token}"] = float(count)
                yield bag

        hasher = FeatureHasher(n_features=self.n_features, input_type="dict", dtype=np.float64)
        return hasher.transform(rows()).tocsr()

    def to_card(self) -> dict:
        return {"n_features": self.n_features, "numeric": list(self.numeric), "categorical": list(self.categorical),
                "text": list(self.text), "moments": [list(m) for m in self.moments]}

    @classmethod
    def from_card(cls, card) -> "FeatureHashing":
        try:
            n = card["n_features"]
            kinds = [tuple(str(c) for c in card[key]) for key in ("numeric", "categorical", "text")]
        except (KeyError, TypeError) as e:
            raise ModelFileError(f"'feature_hashing' must hold n_features, numeric, categorical, text ({e})") from None
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_FEATURES:
            raise ModelFileError(f"'feature_hashing': n_features must be an integer in [1, 2^28], got {n!r}")
        try:
            moments = tuple((float(m), float(s)) for m, s in card.get("moments", [(0.0, 1.0)] * len(kinds[0])))
        except (TypeError, ValueError):
            moments = ()
        if len(moments) != len(kinds[0]) or not all(np.isfinite(m) and s > 0 for m, s in moments):
            raise ModelFileError("'feature_hashing': moments must hold a finite mean and a positive std per numeric "
                                 "column")
        return cls(n, *kinds, moments)


def _numbers(column: pd.Series) -> np.ndarray | None:
    """The column's values as float64 when every one of them is a number (missing ones excepted), else None."""
    if is_bool_dtype(column):
        return None
    present = column.dropna()
    if is_numeric_dtype(column):
        return present.to_numpy(np.float64)
    parsed = pd.to_numeric(present, errors="coerce")
    return None if parsed.isna().any() else parsed.to_numpy(np.float64)


def _token(v) -> str:
    """A categorical value as a string: integral floats without ".0" (a column that gained a missing
    value in one file and turned float still hashes "1" as "1")."""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))
