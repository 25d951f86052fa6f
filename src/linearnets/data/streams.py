"""Opening streamed data: a file or folder → :class:`~linearnets.data.shards.Shards` (NPY/Parquet)
or :class:`~linearnets.data.svmlight.SvmlightShards` (svmlight/libsvm text, sparse rows)."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from .shards import STREAM_SUFFIXES, Shards
from .svmlight import SVMLIGHT_SUFFIXES, SvmlightShards

__all__ = ["open_shards"]


def _svmlight_only(target, weight, path) -> None:
    if target is not None or weight is not None:
        raise DataError(f"{path}: svmlight rows carry their label first and no named columns; "
                        "a target or weight column does not apply")


def open_shards(path, target=None, *, has_target: bool = True, weight=None, buffer_rows: int = 16384,
                block_rows: int = 4096, shuffle: bool = True, n_features: int | None = None,
                zero_based="auto") -> Shards:
    """A :class:`Shards` over an NPY/Parquet file or a folder of them (sorted by name) — or a
    :class:`~linearnets.data.svmlight.SvmlightShards` over svmlight files (sparse rows; ``n_features``
    and ``zero_based``: the width and index base of a model trained before).

    ``buffer_rows``, ``block_rows``, ``shuffle``: how training shuffles the stream (see
    :func:`~linearnets.data.shuffle.shuffled_batches`); full-batch solvers read in file order.
    """
    path = Path(path)
    opts = dict(has_target=has_target, weight=weight, buffer_rows=buffer_rows, block_rows=block_rows,
                shuffle=shuffle)
    svm = dict(buffer_rows=buffer_rows, block_rows=block_rows, shuffle=shuffle, n_features=n_features,
               zero_based=zero_based)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in STREAM_SUFFIXES)
        sparse = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SVMLIGHT_SUFFIXES)
        if files and sparse:
            raise DataError(f"{path}: mixes svmlight files with .npy/.parquet shards; use one format")
        if sparse:
            _svmlight_only(target, weight, path)
            return SvmlightShards(sparse, name=path.name, **svm)
        if not files:
            raise DataError(f"{path}: no .npy, .parquet or svmlight files in this folder")
        return Shards(files, target, name=path.name, **opts)
    if not path.is_file():
        raise DataError(f"{path}: no such file or folder")
    if path.suffix.lower() in SVMLIGHT_SUFFIXES:
        _svmlight_only(target, weight, path)
        return SvmlightShards([path], **svm)
    if path.suffix.lower() not in STREAM_SUFFIXES:
        raise DataError(f"{path}: streaming reads .npy, .parquet and svmlight (.svm) files (got {path.suffix!r}); "
                        "convert a CSV with pandas (df.to_parquet) first")
    return Shards([path], target, **opts)


