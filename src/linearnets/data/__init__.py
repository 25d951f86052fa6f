"""Data: synthetic sets, built-in (offline) sets, MNIST / Fashion-MNIST, user files and shards,
and the sources training reads rows from.

This package is the only code that reads data files.
"""

from ..errors import DataError
from .builtin import load_diabetes, load_digits
from .dataset import Dataset
from .files import read_svmlight, read_table
from .hashing import FeatureHashing
from .idx import (
    DATASETS,
    data_home,
    download_file,
    fetch,
    load_fashion_mnist,
    load_mnist,
    parse_idx,
    read_idx,
    sha256_file,
    verify,
    write_idx,
)
from .shards import Shards
from .source import Block, DataSource, InMemory, Interleaved, Streamed, holdout
from .streams import open_shards
from .svmlight import SvmlightShards
from .synthetic import (
    FASHION_CLASSES,
    fashion_mnist_like,
    handwritten_28x28,
    synthetic_classification,
    synthetic_regression,
)
from .targets import Targets

BUILTIN = ("digits", "diabetes", "synthetic-regression", "synthetic-fashion", "fashion-mnist", "mnist")


def load(name: str, *, split: str = "train", root=None, download: bool = True, seed: int = 0) -> Dataset:
    """A dataset by name: digits, diabetes, synthetic-regression, synthetic-fashion, fashion-mnist, mnist."""
    loaders = {
        "digits": lambda: load_digits(),
        "diabetes": lambda: load_diabetes(),
        "synthetic-regression": lambda: synthetic_regression(seed=seed),
        "synthetic-fashion": lambda: fashion_mnist_like(seed=seed),
        "fashion-mnist": lambda: load_fashion_mnist(root, split, download),
        "mnist": lambda: load_mnist(root, split, download),
    }
    if name not in loaders:
        raise DataError(f"unknown dataset {name!r}; use one of {', '.join(BUILTIN)} or a file path")
    return loaders[name]()


__all__ = ["Dataset", "load", "Shards", "open_shards", "Block", "DataSource", "InMemory", "Interleaved",
           "Streamed", "SvmlightShards", "Targets", "holdout", "BUILTIN", "load_digits", "load_diabetes", "read_table", "read_svmlight", "FeatureHashing",
           "synthetic_regression", "synthetic_classification", "fashion_mnist_like",
           "handwritten_28x28",
           "FASHION_CLASSES", "load_fashion_mnist", "load_mnist", "read_idx", "parse_idx",
           "write_idx", "fetch", "verify", "download_file", "sha256_file", "data_home", "DATASETS"]
