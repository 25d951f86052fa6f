r"""Data larger than memory: NPY and Parquet files, or folders of them, read in blocks.

    shards = open_shards("data/train/", target="label")     # a folder of .npy / .parquet files
    shards.n, shards.d                                       # rows, feature columns (from headers)
    for X, y in shards.blocks(0, shards.n, 4096): ...        # NumPy blocks, in file order

Nothing here holds more than one block of rows (plus, for Parquet, one row group):

- **NPY** files are C-ordered 2-D arrays; the header is parsed once and rows
  ``[a, b)`` are read with one positioned read (``os.preadv``) into a block buffer. We
  read by offset instead of through a memory map so that pages already used do not
  count against the process (a memory map keeps every page it touched resident).
- **Parquet** files are read one row group at a time (write them with row groups of at
  most a few hundred MiB; memory is bounded by the largest row group).

The target is a column (name, or index; by default the last), as in :func:`read_table`.
Every shard of a folder must have the same columns. :func:`shuffled_batches` turns
blocks into shuffled minibatches (block order + a shuffle buffer; see there).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError, FormatError

__all__ = ["Shards", "open_shards", "shuffled_batches", "epoch_generator", "rank_range",
           "STREAM_SUFFIXES"]

STREAM_SUFFIXES = (".npy", ".parquet", ".pq")
MAX_HEADER = 1 << 16


def epoch_generator(seed: int, epoch: int, rank: int = 0) -> torch.Generator:
    """The generator that shuffles epoch ``epoch`` of rank ``rank``: a function of the three
    numbers only (numpy's SeedSequence mixes them), so any epoch can be replayed on resume."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), int(rank)]).generate_state(2)
    return torch.Generator().manual_seed(int(state[0]) << 31 ^ int(state[1]))


def rank_range(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rows ``[⌊r n / P⌋, ⌊(r+1) n / P⌋)``: the contiguous part of ``n`` rows rank r owns."""
    return (rank * n) // world_size, ((rank + 1) * n) // world_size


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
        if dtype.hasobject or not np.issubdtype(dtype, np.number):
            raise FormatError(f"{path}: expected a numeric array, got dtype {dtype}")
        if fortran and shape[0] > 1 and shape[1] > 1:
            raise FormatError(f"{path}: the array is stored column-major (Fortran order); streaming "
                              "reads rows — save it with np.save(path, np.ascontiguousarray(a))")
        self.dtype = dtype
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
        view = memoryview(out).cast("B")
        fd = os.open(self.path, os.O_RDONLY)
        try:
            done, pos = 0, self.offset + a * self.row_bytes
            while done < len(view):
                got = os.preadv(fd, [view[done:]], pos + done)
                if got <= 0:
                    raise FormatError(f"{self.path}: file shrank while reading (row {a + done // self.row_bytes})")
                done += got
        finally:
            os.close(fd)
        return out


class _ParquetShard:
    def __init__(self, path: Path):
        import pyarrow as pa
        import pyarrow.parquet as pq

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

    def read_columns(self, a: int, b: int, features: list[int], target: int | None):
        """(X (m, len(features)) float64 or float32, y (m,) or None) for rows [a, b)."""
        parts_X, parts_y = [], []
        g = int(np.searchsorted(self.group_starts, a, side="right") - 1)
        while a < b:
            s, e = self.group_starts[g], self.group_starts[g + 1]
            cols = self._group(g)
            lo, hi = a - s, min(b, e) - s
            parts_X.append(np.column_stack([cols[self.columns[j]][lo:hi] for j in features]))
            if target is not None:
                parts_y.append(cols[self.columns[target]][lo:hi])
            a, g = min(b, e), g + 1
        X = parts_X[0] if len(parts_X) == 1 else np.concatenate(parts_X)
        y = None if target is None else (parts_y[0] if len(parts_y) == 1 else np.concatenate(parts_y))
        return X, y


# --- a set of shards --------------------------------------------------------------------------
@dataclass(frozen=True)
class _Piece:
    shard: int
    start: int          # rows [start, stop) of that shard
    stop: int


class Shards:
    """One file or a folder of NPY/Parquet files with the same columns, as one table of
    ``n`` rows: ``d`` feature columns and one target column. Only headers are read here."""

    def __init__(self, paths: list[Path], target=None, *, has_target: bool = True, name: str | None = None,
                 buffer_rows: int = 16384, block_rows: int = 4096, shuffle: bool = True):
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
            from .files import _column_index
            self.target = _column_index(target, self.columns, paths[0])
            if len(self.columns) < 2:
                raise DataError(f"{paths[0]}: needs at least one feature column besides the target")
        self.features = [j for j in range(len(self.columns)) if j != self.target]
        if self.kind == "parquet":
            bad = [self.columns[j] for j in self.features if not first.numeric[j]]
            if bad:
                raise FormatError(f"{paths[0]}: column {bad[0]!r} is not numeric; convert or drop it "
                                  "before training")
        self.sizes = [s.n for s in self.shards]
        self.starts = np.cumsum([0] + self.sizes)
        if self.n == 0:
            raise DataError(f"{paths[0]}: no rows")

    @property
    def n(self) -> int:
        return int(self.starts[-1])

    @property
    def d(self) -> int:
        return len(self.features)

    @property
    def feature_names(self) -> tuple[str, ...] | None:
        return tuple(self.columns[j] for j in self.features) if self.kind == "parquet" else None

    @property
    def target_name(self) -> str | None:
        return None if self.target is None else self.columns[self.target]

    @property
    def feature_dtype(self) -> np.dtype:
        return self.shards[0].dtype if self.kind == "npy" else np.dtype(np.float64)

    def __repr__(self) -> str:
        return f"Shards({self.name!r}, {len(self.paths)} {self.kind} file(s), n={self.n}, d={self.d})"

    def pieces(self, lo: int, hi: int, block_rows: int) -> list[_Piece]:
        """Rows [lo, hi) cut into blocks of at most ``block_rows`` consecutive rows, never
        across a shard boundary, in file order."""
        out = []
        for i, (s, e) in enumerate(zip(self.starts[:-1], self.starts[1:])):
            a, b = max(lo, s), min(hi, e)
            for p in range(a, b, block_rows):
                out.append(_Piece(i, int(p - s), int(min(b, p + block_rows) - s)))
        return out

    def read_piece(self, piece: _Piece) -> tuple[np.ndarray, np.ndarray | None]:
        """(X (m, d), y (m,) or None) of one piece; X keeps the file's dtype."""
        shard = self.shards[piece.shard]
        if self.kind == "parquet":
            return shard.read_columns(piece.start, piece.stop, self.features, self.target)
        rows = shard.read(piece.start, piece.stop)
        t = self.target
        if t is None:
            return rows, None
        if t == rows.shape[1] - 1:
            X = rows[:, :-1]                        # a strided view; copied once downstream
        elif t == 0:
            X = rows[:, 1:]
        else:
            X = np.delete(rows, t, axis=1)
        return X, rows[:, t]

    def blocks(self, lo: int = 0, hi: int | None = None, block_rows: int = 4096,
               order: Tensor | None = None) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """Blocks (X, y) of rows [lo, hi) — in file order, or in ``order`` (indices of pieces)."""
        pieces = self.pieces(lo, self.n if hi is None else hi, block_rows)
        for i in (range(len(pieces)) if order is None else order.tolist()):
            yield self.read_piece(pieces[i])

    def targets(self, block_rows: int = 65536) -> np.ndarray:
        """The whole target column (n,) — one pass; used to find the classes."""
        if self.target is None:
            raise DataError(f"{self.name}: no target column")
        return np.concatenate([y for _, y in self.blocks(0, self.n, block_rows)])


def open_shards(path, target=None, *, has_target: bool = True, buffer_rows: int = 16384,
                block_rows: int = 4096, shuffle: bool = True) -> Shards:
    """A :class:`Shards` over an NPY/Parquet file or a folder of them (sorted by name).

    ``buffer_rows``, ``block_rows``, ``shuffle``: how training shuffles the stream (see
    :func:`shuffled_batches`); full-batch solvers read in file order regardless.
    """
    path = Path(path)
    opts = dict(has_target=has_target, buffer_rows=buffer_rows, block_rows=block_rows, shuffle=shuffle)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in STREAM_SUFFIXES)
        if not files:
            raise DataError(f"{path}: no .npy or .parquet files in this folder")
        return Shards(files, target, name=path.name, **opts)
    if not path.is_file():
        raise DataError(f"{path}: no such file or folder")
    if path.suffix.lower() not in STREAM_SUFFIXES:
        raise DataError(f"{path}: streaming reads .npy and .parquet files (got {path.suffix!r}); "
                        "convert a CSV with pandas (df.to_parquet) first")
    return Shards([path], target, **opts)


# --- shuffled minibatches -------------------------------------------------------------------------
def shuffled_batches(shards: Shards, lo: int, hi: int, batch_size: int, *, generator: torch.Generator | None,
                     encode: Callable[[np.ndarray], Tensor], dtype: torch.dtype,
                     device: torch.device = torch.device("cpu"), buffer_rows: int = 16384,
                     block_rows: int = 4096) -> Iterator[tuple[Tensor, Tensor]]:
    r"""Minibatches ``(X_b (m, d), t_b (m,))`` of rows [lo, hi) for one epoch.

    With a ``generator`` (shuffling):

    1. the rows are cut into blocks of ``block_rows`` consecutive rows (never across shards),
       and the blocks are read in a random order;
    2. each block enters a buffer that keeps ``buffer_rows`` rows; whenever it holds at least
       ``buffer_rows + batch_size`` rows, as many whole batches as possible are drawn from it
       uniformly at random without replacement (the rest stay for later);
    3. at the end the buffer is drawn empty in a random order.

    So every row is seen exactly once per epoch; as in any shuffle buffer, a row may leave
    it late, and ``buffer_rows ≥ hi - lo`` gives a uniform random permutation. With
    ``generator=None`` rows come in file order. ``encode`` maps a block's targets to a tensor
    (class indices or values). Memory: (buffer_rows + batch_size + block_rows) rows.
    """
    n_pieces = len(shards.pieces(lo, hi, block_rows))
    order = torch.randperm(n_pieces, generator=generator) if generator is not None else None
    blocks = shards.blocks(lo, hi, block_rows, order)
    B = int(batch_size)
    if generator is None:
        carry_X, carry_t = None, None
        for X, y in blocks:
            Xt, tt = torch.from_numpy(np.ascontiguousarray(X)).to(dtype), encode(y)
            if carry_X is not None:
                Xt, tt = torch.cat([carry_X, Xt]), torch.cat([carry_t, tt])
            full = (Xt.shape[0] // B) * B
            for s in range(0, full, B):
                yield Xt[s:s + B].to(device), tt[s:s + B].to(device)
            carry_X, carry_t = Xt[full:], tt[full:]
        if carry_X is not None and carry_X.shape[0]:
            yield carry_X.to(device), carry_t.to(device)
        return
    S = int(buffer_rows)
    cap = S + B + block_rows
    buf_X = torch.empty(cap, shards.d, dtype=dtype)
    buf_t: Tensor | None = None
    fill = 0
    for X, y in blocks:
        m = X.shape[0]
        buf_X[fill:fill + m] = torch.from_numpy(X)          # one copy (and cast) into the buffer
        t = encode(y)
        if buf_t is None:
            buf_t = torch.empty(cap, dtype=t.dtype)
        buf_t[fill:fill + m] = t
        fill += m
        if fill < S + B:
            continue
        e = ((fill - S) // B) * B
        pick = torch.randperm(fill, generator=generator)[:e]
        out_X, out_t = buf_X.index_select(0, pick), buf_t.index_select(0, pick)
        # move the unpicked rows beyond the first fill - e slots into the holes left below it
        keep = fill - e
        picked = torch.zeros(fill, dtype=torch.bool)
        picked[pick] = True
        holes = picked[:keep].nonzero().squeeze(1)
        movers = (~picked[keep:]).nonzero().squeeze(1) + keep
        buf_X[holes] = buf_X.index_select(0, movers)
        buf_t[holes] = buf_t.index_select(0, movers)
        fill = keep
        for Xb, tb in zip(out_X.split(B), out_t.split(B)):
            yield Xb.to(device), tb.to(device)
    if fill:
        pick = torch.randperm(fill, generator=generator)
        out_X, out_t = buf_X.index_select(0, pick), buf_t.index_select(0, pick)
        for Xb, tb in zip(out_X.split(B), out_t.split(B)):
            yield Xb.to(device), tb.to(device)
