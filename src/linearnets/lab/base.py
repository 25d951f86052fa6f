"""What every lab experiment shares: its configuration, its result, verdicts, timing helpers.

An experiment is a module with ``ID``, ``TITLE``, ``CLAIM_ZH``, ``CLAIM_EN``, ``RUN`` (what
is run, in words), ``run(config, deps) -> Result`` (numbers only) and
``plot(result, folder) -> list[str]`` (figures from the numbers).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from .. import data
from .._io import jsonable
from ..plots import save_figure
from ..timing import median_time as timeit  # noqa: F401  (the experiments' timer)

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"


@dataclass(frozen=True)
class LabConfig:
    quick: bool = True              # small sizes (about a minute in all) or the book's sizes
    dataset: str = "digits"         # digits | fashion-mnist | mnist (classification claims)
    seed: int = 0
    data_root: str | None = None    # folder of MNIST/Fashion-MNIST files

    def size(self, quick, full):
        return quick if self.quick else full

    @cached_property
    def classification(self):
        """(X_train, y_train, X_test, y_test, Dataset) of the chosen dataset, pixels in [0, 1]."""
        if self.dataset == "digits":
            ds = data.load_digits()
            Xtr, Xte, ytr, yte = train_test_split(ds.X, ds.y, test_size=0.25, stratify=ds.y,
                                                  random_state=self.seed)
            return Xtr, ytr, Xte, yte, ds
        loader = data.load_fashion_mnist if self.dataset == "fashion-mnist" else data.load_mnist
        train = loader(self.data_root, "train")
        test = loader(self.data_root, "test")
        n_tr, n_te = self.size((10000, 2000), (train.n, test.n))
        rng = np.random.default_rng(self.seed)
        itr = rng.permutation(train.n)[:n_tr]
        ite = rng.permutation(test.n)[:n_te]
        return train.X[itr], train.y[itr], test.X[ite], test.y[ite], train


@dataclass
class Result:
    id: str
    title: str
    claim_zh: str
    claim_en: str
    run: str                          # what was run, in words
    settings: dict
    seed: int
    numbers: dict                     # the key numbers (JSON)
    verdict: str                      # supported | not supported | inconclusive
    criterion: str                    # the rule that turns numbers into the verdict
    reason: str                       # the rule applied to these numbers
    series: dict = field(default_factory=dict)   # arrays for the figures (not in results.json)
    figures: list = field(default_factory=list)  # PNG file names, filled by plot()
    figure_data: dict = field(default_factory=dict)  # what each figure shows (plots.figure_series)
    nulls: dict = field(default_factory=dict)    # key of ``numbers`` → why it holds None
    seconds: float = 0.0

    def save_figure(self, fig, folder, name: str) -> str:
        """Write ``fig`` as ``folder/name``, record what it shows; returns ``name``."""
        self.figure_data[name] = save_figure(fig, Path(folder) / name)
        return name

    def to_json(self) -> dict:
        return {"id": self.id, "title": self.title, "claim": {"zh": self.claim_zh, "en": self.claim_en},
                "run": self.run, "settings": self.settings, "seed": self.seed,
                "numbers": jsonable(self.numbers), "verdict": self.verdict,
                "criterion": self.criterion, "reason": self.reason, "figures": self.figures,
                "figure_data": self.figure_data, "nulls": self.nulls, "seconds": round(self.seconds, 3)}


def unexplained(numbers: dict, nulls: dict) -> list[str]:
    """Paths of key numbers that are not finite numbers, or None without a reason in ``nulls``
    (keyed by the top-level key of ``numbers``). A report should have none."""
    bad = []

    def walk(value, path, top):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{path}.{k}", top)
        elif isinstance(value, (list, tuple, np.ndarray)):
            for i, v in enumerate(value):
                walk(v, f"{path}[{i}]", top)
        elif value is None:
            if top not in nulls:
                bad.append(f"{path} is None with no reason")
        elif isinstance(value, (float, np.floating)) and not math.isfinite(float(value)):
            bad.append(f"{path} = {value}")
        elif isinstance(value, str) and value in ("inf", "-inf", "nan"):      # as results.json writes them
            bad.append(f"{path} = {value}")
    for key, value in numbers.items():
        walk(value, key, key)
    return bad


def verdict_from(checks: dict[str, bool], *, inconclusive: bool = False) -> str:
    """All checks pass → supported; any fails → not supported (unless marked inconclusive)."""
    if inconclusive:
        return INCONCLUSIVE
    return SUPPORTED if all(checks.values()) else NOT_SUPPORTED


def describe(checks: dict[str, bool]) -> str:
    return "; ".join(f"{'✓' if ok else '✗'} {name}" for name, ok in checks.items())


class Stopwatch:
    """Elapsed seconds that can exclude measurement overhead (``with sw.paused(): ...``)."""

    def __init__(self):
        self.start = time.perf_counter()
        self.excluded = 0.0

    def __call__(self) -> float:
        return time.perf_counter() - self.start - self.excluded

    def paused(self):
        sw = self

        class _Pause:
            def __enter__(self):
                self.t = time.perf_counter()

            def __exit__(self, *exc):
                sw.excluded += time.perf_counter() - self.t
        return _Pause()


def power_law_exponent(x, y) -> float:
    """Least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])
