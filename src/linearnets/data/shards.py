r"""Data larger than memory: NPY and Parquet files, or folders of them, read in blocks.

    shards = open_shards("data/train/", target="label")     # a folder of .npy / .parquet files
    shards.n, shards.d                                       # rows, feature columns (from headers)
    for X, y in shards.blocks(4096): ...                     # NumPy blocks, in file order
    train, val = shards.split(0.2, seed=0)                   # row subsets: whole random blocks

Reading holds one block of rows at a time (plus, for Parquet, one row group); training
holds a staging buffer and two shuffle windows — never anything that grows with the rows:

- **NPY** files are C-ordered 2-D arrays; the header is parsed once and rows
  ``[a, b)`` are read with one positioned read (``os.preadv``) into a block buffer. We
  read by offset instead of through a memory map so that pages already used do not
  count against the process (a memory map keeps every page it touched resident).
- **Parquet** files are read one row group at a time (write them with row groups of at
  most a few hundred MiB; memory is bounded by the largest row group).

The target is a column (name, or index; by default the last), as in :func:`read_table`.
Every shard of a folder must have the same columns (and, for NPY, the same dtype; big-endian
files are byte-swapped as they are read). :func:`~linearnets.data.shuffle.shuffled_batches`
turns blocks into shuffled minibatches.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from ..errors import DataError, FormatError
from .files import column_index
from .shuffle import derived_seed, rank_range

__all__ = ["Shards", "Piece", "STREAM_SUFFIXES"]

STREAM_SUFFIXES = (".npy", ".parquet", ".pq")
MAX_HEADER = 1 << 16


# --- one shard ------------------------------------------------------------------------------
class _NpyShard:
    def __init__(self, path: Path):
        self.path = path
        try:
            with open(path, "rb") as f:
                major, _ = np.lib.format.read_magic(f)
                read_header = (np.lib.format.read_array_header_1_0 if major == 1
                               else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = read_header(f, max_header_size=MAX_HEADER)
                self.offset = f.tell()
        except Exception as e:                      # the header is parsed from untrusted bytes
            msg = (str(e).splitlines() or [type(e).__name__])[0]
            raise FormatError(f"{path}: not a readable .npy file ({type(e).__name__}: {msg})") from None
        if len(shape) != 2:
            raise FormatError(f"{path}: expected a 2-D array (rows × columns), got shape {shape}")
        if dtype.kind not in "iuf":
            raise FormatError(f"{path}: expected an integer or floating-point array, got dtype {dtype}")
        if fortran and shape[0] > 1 and shape[1] > 1:
            raise FormatError(f"{path}: the array is stored column-major (Fortran order); streaming "
                              "reads rows — save it with np.save(path, np.ascontiguousarray(a))")
        self.dtype = dtype.newbyteorder("=")          # rows are handed out in native byte order
        self.swap = not dtype.isnative                 # a big-endian file: swapped as it is read
        self.n, self.width = int(shape[0]), int(shape[1])
        self.row_bytes = self.width * dtype.itemsize
        need = self.offset + self.n * self.row_bytes
        size = path.stat().st_size
        if size < need:
            raise FormatError(f"{path}: truncated: the header declares {self.n} × {self.width} "
                              f"{dtype} ({need} bytes) but the file has {size} bytes")
        self.columns = [str(i) for i in range(self.width)]

    def read(self, a: int, b: int) -> np.ndarray:
        """Rows [a, b) as an (m, width) array (a fresh buffer)."""
        out = np.empty((b - a, self.width), dtype=self.dtype)
        self.read_into(a, b, out)
        return out

    def read_into(self, a: int, b: int, out: np.ndarray) -> None:
        """Rows [a, b) straight into ``out`` ((b - a, width), C order, this dtype): one positioned
        read by the kernel into the caller's buffer, no intermediate copy."""
        fd = os.open(self.path, os.O_RDONLY)
        try:
            _preadv_all(fd, [memoryview(out).cast("B")], self.offset + a * self.row_bytes, self.path)
        finally:
            os.close(fd)
        if self.swap:
            out.byteswap(inplace=True)


def _preadv_all(fd: int, views: list, pos: int, path) -> None:
    """Fill every view from ``pos`` on, 1024 views per call, resuming after short reads."""
    i = 0
    while i < len(views):
        got = os.preadv(fd, views[i:i + 1024], pos)
        if got <= 0:
            raise FormatError(f"{path}: file shrank while reading")
        pos += got
        while got:
            if got >= len(views[i]):
                got -= len(views[i])
                i += 1
            else:
                views[i] = views[i][got:]
                got = 0


class _ParquetShard:
    def __init__(self, path: Path):
        self.path = path
        try:
            self.file = pq.ParquetFile(path)
            meta = self.file.metadata
            schema = self.file.schema_arrow
        except Exception as e:
            msg = (str(e).splitlines() or [type(e).__name__])[0]
            raise FormatError(f"{path}: cannot read as parquet: {type(e).__name__}: {msg}") from None
        names = [n for n in schema.names if not n.startswith("__index_level_")]
        self.columns = names
        self.numeric = [pa.types.is_integer(schema.field(n).type) or pa.types.is_floating(schema.field(n).type)
                        for n in names]
        self.n, self.width = int(meta.num_rows), len(names)
        self.group_starts = np.cumsum([0] + [meta.row_group(i).num_rows for i in range(meta.num_row_groups)])
        self._cached: tuple[int, dict] | None = None

    def _group(self, i: int) -> dict:
        if self._cached is None or self._cached[0] != i:
            try:
                table = self.file.read_row_group(i, columns=self.columns)
                cols = {name: table.column(name).to_numpy(zero_copy_only=False) for name in self.columns}
            except Exception as e:
                msg = (str(e).splitlines() or [type(e).__name__])[0]
                raise FormatError(f"{self.path}: row group {i}: {type(e).__name__}: {msg}") from None
            self._cached = (i, cols)
        return self._cached[1]

    def read_columns(self, a: int, b: int, features: list[int], *single: int | None):
        """(X (m, len(features)) float64 or float32, then each column of ``single`` (m,) or None)
        for rows [a, b)."""
        parts_X, parts = [], [[] for _ in single]
        g = int(np.searchsorted(self.group_starts, a, side="right") - 1)
        while a < b:
            s, e = self.group_starts[g], self.group_starts[g + 1]
            cols = self._group(g)
            lo, hi = a - s, min(b, e) - s
            if features:
                parts_X.append(np.column_stack([cols[self.columns[j]][lo:hi] for j in features]))
            for out, j in zip(parts, single):
                if j is not None:
                    out.append(cols[self.columns[j]][lo:hi])
            a, g = min(b, e), g + 1
        join = lambda p: None if not p else p[0] if len(p) == 1 else np.concatenate(p)      # noqa: E731
        return (join(parts_X), *(join(p) for p in parts))


# --- a set of shards --------------------------------------------------------------------------
@dataclass(frozen=True)
class Piece:
    """Rows ``[start, stop)`` of shard number ``shard`` (never across a shard boundary)."""
    shard: int
    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start


class Shards:
    """One file or a folder of NPY/Parquet files with the same columns, as one table: ``d``
    feature columns and one target column. Only headers are read here.

    A ``Shards`` may stand for a *subset* of the rows — ``spans``, sorted disjoint ranges of the
    table's rows — as made by :meth:`split` (a held-out validation set), :meth:`part` (a rank's
    share) and :meth:`rows`; ``n`` counts the rows of the subset. ``buffer_rows``,
    ``block_rows`` and ``shuffle`` say how training shuffles the stream
    (:func:`~linearnets.data.shuffle.shuffled_batches`).
    """

    sparse = False                   # rows come as scipy CSR matrices (svmlight shards)

    def __init__(self, paths: list[Path], target=None, *, has_target: bool = True, weight=None,
                 name: str | None = None, buffer_rows: int = 16384, block_rows: int = 4096, shuffle: bool = True):
        if int(buffer_rows) < 0 or int(block_rows) < 1:
            raise DataError(f"shuffle buffer ({buffer_rows} rows) must be ≥ 0 and blocks ({block_rows}) ≥ 1 row")
        self.buffer_rows, self.block_rows, self.shuffle = int(buffer_rows), int(block_rows), bool(shuffle)
        if not paths:
            raise DataError("no .npy or .parquet files to stream")
        kinds = {p.suffix.lower() == ".npy" for p in paths}
        if len(kinds) > 1:
            raise DataError(f"{paths[0].parent}: mixes .npy and .parquet shards; use one format")
        self.paths = paths
        self.name = name or (paths[0].parent.name if len(paths) > 1 else paths[0].stem)
        self.kind = "npy" if kinds.pop() else "parquet"
        self.shards = [(_NpyShard(p) if self.kind == "npy" else _ParquetShard(p)) for p in paths]
        first = self.shards[0]
        for s in self.shards[1:]:
            if s.columns != first.columns or (self.kind == "npy" and s.dtype != first.dtype):
                raise DataError(f"{s.path}: columns/dtype differ from {first.path}; every shard must match")
        self.columns = first.columns
        self.target: int | None = None
        if has_target:
            self.target = column_index(target, self.columns, paths[0])
            if len(self.columns) < 2:
                raise DataError(f"{paths[0]}: needs at least one feature column besides the target")
        self.weight: int | None = None
        if weight is not None:
            self.weight = column_index(weight, self.columns, paths[0])
            if self.weight == self.target:
                raise DataError(f"{paths[0]}: column {self.columns[self.weight]!r} cannot be both the target "
                                "and the weights")
        self.features = [j for j in range(len(self.columns)) if j not in (self.target, self.weight)]
        if not self.features:
            raise DataError(f"{paths[0]}: needs at least one feature column besides the target and the weights")
        if self.kind == "parquet":
            bad = [self.columns[j] for j in self.features + ([self.weight] if self.weight is not None else [])
                   if not first.numeric[j]]
            if bad:
                raise FormatError(f"{paths[0]}: column {bad[0]!r} is not numeric; convert or drop it "
                                  "before training")
        self.starts = np.cumsum([0] + [s.n for s in self.shards])
        self.spans: tuple[tuple[int, int], ...] = ((0, int(self.starts[-1])),)
        if self.n == 0:
            raise DataError(f"{paths[0]}: no rows")

    @property
    def n(self) -> int:
        """Rows of this (subset of the) table."""
        return sum(hi - lo for lo, hi in self.spans)

    @property
    def d(self) -> int:
        return len(self.features)

    @property
    def row_bytes(self) -> int:
        """Bytes of one row as it is read (every column; Parquet as float64)."""
        return max(1, len(self.columns) * (self.shards[0].dtype.itemsize if self.kind == "npy" else 8))

    @property
    def feature_names(self) -> tuple[str, ...] | None:
        return tuple(self.columns[j] for j in self.features) if self.kind == "parquet" else None

    @property
    def target_name(self) -> str | None:
        return None if self.target is None else self.columns[self.target]

    def __repr__(self) -> str:
        subset = "" if self.n == int(self.starts[-1]) else f" of {int(self.starts[-1])}"
        return f"Shards({self.name!r}, {len(self.paths)} {self.kind} file(s), n={self.n}{subset}, d={self.d})"

    # --- subsets of the rows ----------------------------------------------------------------------
    def with_spans(self, spans) -> "Shards":
        """The same files, restricted to the rows of ``spans`` (merged where adjacent)."""
        merged: list[list[int]] = []
        for lo, hi in sorted((int(a), int(b)) for a, b in spans if b > a):
            if merged and lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        out = copy.copy(self)
        out.spans = tuple((lo, hi) for lo, hi in merged)
        return out

    def rows(self, lo: int, hi: int) -> "Shards":
        """Rows ``[lo, hi)`` of this subset, counted in its own order."""
        out, pos = [], 0
        for a, b in self.spans:
            s, e = max(a, a + lo - pos), min(b, a + hi - pos)
            if e > s:
                out.append((s, e))
            pos += b - a
        return self.with_spans(out)

    def part(self, rank: int, world_size: int) -> "Shards":
        """Rank ``rank``'s contiguous share of the rows (:func:`~linearnets.data.shuffle.rank_range`)."""
        return self.rows(*rank_range(self.n, rank, world_size))

    def split(self, fraction: float, seed: int = 0) -> tuple["Shards", "Shards"]:
        """(train, validation): blocks of consecutive rows, chosen at random (seeded), go to validation
        until it holds ``round(fraction · n)`` rows (within one block). A block is ``block_rows`` rows at
        most, and small enough that validation takes at least 16 of them, so small files split
        finely too. Streams cannot be stratified: with ordered data, use small ``block_rows``."""
        want = max(1, int(round(fraction * self.n)))
        pieces = self.pieces(max(1, min(self.block_rows, want // 16)))
        order = torch.randperm(len(pieces), generator=torch.Generator().manual_seed(derived_seed(seed, 2)))
        val, rows = [], 0
        for i in order.tolist():
            if rows >= want:
                break
            if rows + pieces[i].rows > want and rows:          # a shard's short tail block may still fit
                continue
            val.append(i)
            rows += pieces[i].rows
        chosen = set(val)
        span = lambda p: (int(self.starts[p.shard]) + p.start, int(self.starts[p.shard]) + p.stop)
        train = [span(p) for i, p in enumerate(pieces) if i not in chosen]
        if not train:
            raise DataError(f"{self.name}: holding out {fraction:.0%} in blocks of {self.block_rows} rows "
                            f"leaves no training rows; use a smaller fraction or --block-rows")
        return self.with_spans(train), self.with_spans([span(pieces[i]) for i in val])

    # --- reading ---------------------------------------------------------------------------------
    def pieces(self, block_rows: int) -> list[Piece]:
        """The subset's rows cut into blocks of at most ``block_rows`` consecutive rows, never
        across a shard boundary, in file order."""
        out = []
        for lo, hi in self.spans:
            first = int(np.searchsorted(self.starts, lo, side="right")) - 1      # the shards this span touches
            last = int(np.searchsorted(self.starts, hi, side="left"))
            for i in range(max(first, 0), min(last, len(self.shards))):
                s, e = int(self.starts[i]), int(self.starts[i + 1])
                a, b = max(lo, s), min(hi, e)
                for p in range(a, b, block_rows):
                    out.append(Piece(i, p - s, min(b, p + block_rows) - s))
        return out

    def read_piece(self, piece: Piece) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """(X (m, d), y (m,) or None, w (m,) or None) of one piece; X keeps the file's dtype."""
        shard = self.shards[piece.shard]
        if self.kind == "parquet":
            return shard.read_columns(piece.start, piece.stop, self.features, self.target, self.weight)
        rows = shard.read(piece.start, piece.stop)
        return self.split_row(rows)

    def split_row(self, rows: np.ndarray):
        """Full NPY rows (m, columns) → (X, y, w): the features a view where they are contiguous."""
        f = self.features
        X = rows[:, f[0]:f[0] + len(f)] if f == list(range(f[0], f[0] + len(f))) else rows[:, f]
        pick = lambda j: None if j is None else rows[:, j]                          # noqa: E731
        return X, pick(self.target), pick(self.weight)

    def blocks(self, block_rows: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]]:
        """Blocks (X, y, w) of at most ``block_rows`` rows of the subset, in file order."""
        for piece in self.pieces(block_rows):
            yield self.read_piece(piece)

    def labels(self, counts: bool = False):
        """The distinct values of the target column (and how often each occurs, with ``counts``), in one
        pass over it; a DataError when the shards disagree on its type (0/1 in one file, "0"/"1" in another)."""
        kinds, found = set(), {}
        try:
            for y in self.targets():
                kinds.add("text" if y.dtype.kind in "OUS" else "number")
                if len(kinds) > 1:
                    raise DataError(f"{self.name}: the target column {self.target_name!r} holds numbers in some "
                                    "rows or shards and text in others; give every shard the same label type")
                values, number = np.unique(y, return_counts=True)
                for v, c in zip(values.tolist(), number.tolist()):
                    found[v] = found.get(v, 0) + c
            present = np.unique(np.array(list(found))) if found else np.array([])
        except TypeError as e:                           # e.g. None among strings (a missing label)
            raise DataError(f"{self.name}: the target column {self.target_name!r} mixes types or has missing "
                            f"values ({e})") from None
        if not counts:
            return present
        return present, np.array([found[v] for v in present.tolist()])

    def targets(self) -> Iterator[np.ndarray]:
        """The target column of the subset, block by block (for Parquet, that column alone is read;
        NPY rows are read ~4 MiB at a time)."""
        for piece in self.pieces(max(1, (4 << 20) // self.row_bytes)):
            shard = self.shards[piece.shard]
            if self.kind == "parquet":
                yield shard.read_columns(piece.start, piece.stop, [], self.target)[1]
            else:
                yield shard.read(piece.start, piece.stop)[:, self.target]
