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
from ..data import Dataset
from ..errors import ConfigError, DataError
from ..plots import save_figure
from ..timing import median_time as timeit  # noqa: F401  (the experiments' timer)

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"
WORK, TIME = "work", "time"     # what a claim's verdict is judged on (samples, steps, bytes — or seconds)


DATASETS = ("digits", "synthetic-fashion", "fashion-mnist", "mnist")
MIN_TRAIN, MIN_TEST = 100, 20


@dataclass(frozen=True)
class LabConfig:
    quick: bool = True              # work budgets of the quick run (about a minute) or the book's sizes
    dataset: str = "digits"         # digits | synthetic-fashion | fashion-mnist | mnist (classification claims)
    seed: int = 0
    data_root: str | None = None    # folder of MNIST/Fashion-MNIST files

    def size(self, quick, full):
        return quick if self.quick else full

    @cached_property
    def classification(self):
        """(X_train, y_train, X_test, y_test, Dataset) of the chosen dataset: pixels in [0, 1], labels
        0..k-1 (``Dataset.class_names`` names them). Quick runs use at most 10 000 training and 2 000
        test rows (a seeded sample), so their work is bounded whatever the dataset's size."""
        if self.dataset not in DATASETS:
            raise ConfigError(f"unknown lab dataset {self.dataset!r}; choose one of {', '.join(DATASETS)}")
        if self.dataset == "digits":
            ds = data.load_digits()
            Xtr, Xte, ytr, yte = train_test_split(ds.X, ds.y, test_size=0.25, stratify=ds.y,
                                                  random_state=self.seed)
            return checked_split(Xtr, ytr, Xte, yte, ds, self.where)
        if self.dataset == "synthetic-fashion":
            train = data.fashion_mnist_like(n=self.size(12000, 70000), seed=self.seed)
            n_tr = self.size(10000, 60000)
            test = Dataset(train.X[n_tr:], train.y[n_tr:], name=train.name, task=train.task,
                           class_names=train.class_names, image_shape=train.image_shape)
            train = Dataset(train.X[:n_tr], train.y[:n_tr], name=train.name, task=train.task,
                            class_names=train.class_names, image_shape=train.image_shape)
        else:
            loader = data.load_fashion_mnist if self.dataset == "fashion-mnist" else data.load_mnist
            train = loader(self.data_root, "train")
            test = loader(self.data_root, "test")
        n_tr, n_te = self.size((min(train.n, 10000), min(test.n, 2000)), (train.n, test.n))
        rng = np.random.default_rng(self.seed)
        itr = np.sort(rng.permutation(train.n)[:n_tr])
        ite = np.sort(rng.permutation(test.n)[:n_te])
        return checked_split(train.X[itr], train.y[itr], test.X[ite], test.y[ite], train, self.where)

    @property
    def where(self) -> str:
        """The dataset in words, for error messages."""
        return f"lab dataset {self.dataset}" + (f" in {self.data_root}" if self.data_root else "")

    @property
    def k(self) -> int:
        """The number of classes of the classification dataset."""
        return len(self.classification[4].class_names)


def checked_split(Xtr, ytr, Xte, yte, ds: Dataset, where: str):
    """The split, checked before any claim runs: enough rows, at least two classes, labels
    encoded 0..k-1 (test labels unseen in training are refused). Returns
    ``(X_train, y_train, X_test, y_test, Dataset)`` with ``Dataset.class_names`` naming 0..k-1."""
    if len(ytr) < MIN_TRAIN or len(yte) < MIN_TEST:
        raise DataError(f"{where}: {len(ytr)} training and {len(yte)} test rows; the lab needs at least "
                        f"{MIN_TRAIN} and {MIN_TEST}")
    classes = np.unique(ytr)
    if len(classes) < 2:
        raise DataError(f"{where}: every training row has label {classes[0]}; softmax regression needs at "
                        "least 2 classes")
    unseen = np.setdiff1d(np.unique(yte), classes)
    if len(unseen):
        raise DataError(f"{where}: test labels {unseen.tolist()[:5]} never occur in the training rows")
    names = tuple(ds.class_names[int(c)] if ds.class_names and 0 <= int(c) < len(ds.class_names) else str(c)
                  for c in classes)
    ds = Dataset(ds.X[:0], ds.y[:0], name=ds.name, task="classification", class_names=names,
                 image_shape=ds.image_shape)
    return (np.ascontiguousarray(Xtr), np.searchsorted(classes, ytr), np.ascontiguousarray(Xte),
            np.searchsorted(classes, yte), ds)


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
    judged_on: str = "work"                      # "work": exact for the seed; "time": measured
    repeats: int = 1                             # interleaved repeats behind the time measurements
    spread: dict = field(default_factory=dict)   # measured quantity → [from minimum times, from median times]
    timings: dict = field(default_factory=dict)  # seconds shown beside work-judged numbers (not key numbers)
    seconds: float = 0.0

    def save_figure(self, fig, folder, name: str) -> str:
        """Write ``fig`` as ``folder/name``, record what it shows; returns ``name``."""
        self.figure_data[name] = save_figure(fig, Path(folder) / name)
        return name

    def to_json(self) -> dict:
        return {"id": self.id, "title": self.title, "claim": {"zh": self.claim_zh, "en": self.claim_en},
                "run": self.run, "settings": self.settings, "seed": self.seed,
                "numbers": jsonable(self.numbers), "timings": jsonable(self.timings), "verdict": self.verdict,
                "criterion": self.criterion, "reason": self.reason, "figures": self.figures,
                "figure_data": self.figure_data, "nulls": self.nulls,
                "measurement": {"judged_on": self.judged_on, "deterministic_for_seed": self.judged_on == WORK,
                                "repeats": self.repeats, "spread": jsonable(self.spread)},
                "seconds": round(self.seconds, 3)}


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


def verdict_from(checks: dict[str, bool | None], *, inconclusive: bool = False) -> str:
    """Any check False → not supported; else any None (a measurement whose spread straddles its
    threshold) → inconclusive; else supported. ``inconclusive=True`` forces inconclusive."""
    if inconclusive:
        return INCONCLUSIVE
    oks = [tri(ok) for ok in checks.values()]
    if any(ok is False for ok in oks):
        return NOT_SUPPORTED
    return INCONCLUSIVE if any(ok is None for ok in oks) else SUPPORTED


def tri(ok) -> bool | None:
    """A check's value as True, False or None (NumPy's bools are not ``True``/``False`` objects)."""
    return None if ok is None else bool(ok)


def both(a, b) -> bool | None:
    """Three-valued AND: False if either is False, else None if either is unknown, else True."""
    a, b = tri(a), tri(b)
    if a is False or b is False:
        return False
    return None if a is None or b is None else True


def describe(checks: dict[str, bool | None]) -> str:
    mark = {True: "✓", False: "✗", None: "?"}
    return "; ".join(f"{mark[tri(ok)]} {name}" for name, ok in checks.items())


def within(values, low: float = -math.inf, high: float = math.inf) -> bool | None:
    """Judge a measured quantity given as several estimates of it (from minimum and from median
    times): True when all lie in [low, high], False when all lie outside it, None when they
    straddle a bound (the verdict is then inconclusive rather than a coin flip)."""
    if not all(math.isfinite(float(v)) for v in values):
        return None                                   # a failed measurement is no evidence either way
    inside = [low <= float(v) <= high for v in values]
    return True if all(inside) else False if not any(inside) else None


def interleaved_times(fns: dict, repeats: int, warmup: int = 1) -> dict[str, np.ndarray]:
    """Seconds of each callable over ``repeats`` rounds, one call of each per round in turn, so a
    burst of other load falls on all of them alike; ``warmup`` untimed rounds first."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: np.asarray(t) for name, t in times.items()}


def robust(times: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """(minimum, median) seconds of each entry: the minimum is the estimate least disturbed by other
    load; the median shows how far the load moved it."""
    return ({k: float(v.min()) for k, v in times.items()}, {k: float(np.median(v)) for k, v in times.items()})


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
