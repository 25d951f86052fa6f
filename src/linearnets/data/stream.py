r"""Data larger than memory: NPY and Parquet files, or folders of them, read in blocks.

    shards = open_shards("data/train/", target="label")     # a folder of .npy / .parquet files
    shards.n, shards.d                                       # rows, feature columns (from headers)
    for X, y in shards.blocks(0, shards.n, 4096): ...        # NumPy blocks, in file order

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
files are byte-swapped as they are read). :func:`shuffled_batches` turns blocks into
shuffled minibatches (random block order + shuffled windows; see there).
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
        if dtype.hasobject or not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
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
        view = memoryview(out).cast("B")
        fd = os.open(self.path, os.O_RDONLY)
        try:
            _preadv_all(fd, [view], self.offset + a * self.row_bytes, self.path)
        finally:
            os.close(fd)
        if self.swap:
            out.byteswap(inplace=True)
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
                     block_rows: int = 4096, views: bool = False) -> Iterator[tuple[Tensor, Tensor]]:
    r"""Minibatches ``(X_b (m, d), t_b (m,))`` of rows [lo, hi) for one epoch.

    With a ``generator`` (shuffling):

    1. the rows are cut into blocks of ``block_rows`` consecutive rows (never across shards),
       and the blocks are visited in a random order;
    2. consecutive blocks of that order fill a *window* of up to ``buffer_rows`` rows
       (at least one block);
    3. each window is emitted in a uniformly random order, in batches of ``batch_size``
       (a batch may span two windows; only the last batch of the epoch is short).

    So every row is seen exactly once per epoch, each window mixes rows from
    ``buffer_rows / block_rows`` random places of the data, and ``buffer_rows ≥ hi - lo``
    gives one uniform random permutation. With ``generator=None`` rows come in file order.
    ``encode`` maps a block's raw targets to a tensor (class indices or values).

    A background thread prepares the next window while the current one is trained on: it
    reads the blocks (NPY: the kernel copies them straight into a staging buffer) and
    gathers the rows in their shuffled order into a window buffer, so batches are
    contiguous slices. ``views=True`` yields those slices themselves (valid until the next
    batch is requested; the trainer uses them at once), else copies. Memory: three windows.
    """
    pieces = shards.pieces(lo, hi, block_rows)
    if generator is not None:
        pieces = [pieces[i] for i in torch.randperm(len(pieces), generator=generator).tolist()]
    W = max(int(buffer_rows), int(block_rows))
    windows, cur, rows = [], [], 0
    for p in pieces:
        m = p.stop - p.start
        if cur and rows + m > W:
            windows.append(cur)
            cur, rows = [], 0
        cur.append(p)
        rows += m
    if cur:
        windows.append(cur)
    reader = _WindowReader(shards, windows, W, encode, generator, dtype)
    B = int(batch_size)
    carry: tuple[Tensor, Tensor] | None = None
    try:
        for X, t, release in reader:
            w, s = X.shape[0], 0
            if carry is not None:                            # complete the batch left by the last window
                s = min(B - carry[0].shape[0], w)
                carry = (torch.cat([carry[0], X[:s]]), torch.cat([carry[1], t[:s]]))
                if carry[0].shape[0] == B:
                    yield carry[0].to(device), carry[1].to(device)
                    carry = None
            while s < w:
                Xb, tb = X[s:s + B], t[s:s + B]
                s += B
                if Xb.shape[0] < B:
                    carry = (Xb.clone(), tb.clone())
                    break
                if not views or device.type != "cpu":
                    Xb, tb = Xb.clone(), tb.clone()
                yield Xb.to(device), tb.to(device)
            release()
        if carry is not None:
            yield carry[0].to(device), carry[1].to(device)
    finally:
        reader.close()


class _WindowReader:
    """Prepares windows (lists of pieces) on a background thread: read into a staging buffer,
    then gather in shuffled order into one of two window buffers.

    Iterating yields ``(X (w, d), t (w,), release)`` in the window's shuffled order; call
    ``release()`` when done with the window so its buffer can be refilled. The permutations
    are drawn from ``generator`` on the reader thread, one window after the other, so the
    order is the same on every run.
    """

    def __init__(self, shards: Shards, windows: list, W: int, encode, generator, dtype: torch.dtype):
        import queue
        import threading

        self.shards, self.windows, self.encode, self.generator = shards, windows, encode, generator
        first = shards.shards[0]
        self.np_dtype = np.dtype(torch.empty(0, dtype=dtype).numpy().dtype)
        width, stage_dtype = (first.width, first.dtype) if shards.kind == "npy" else (shards.d, np.float64)
        self.stage = np.empty((W, width), dtype=stage_dtype)
        self.buffers = [np.empty((W, shards.d), dtype=self.np_dtype) for _ in range(2)]
        self.free: queue.Queue = queue.Queue()
        for i in range(len(self.buffers)):
            self.free.put(i)
        self.ready: queue.Queue = queue.Queue()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="linearnets-reader", daemon=True)
        self.thread.start()

    def _fill(self, out: np.ndarray, window: list) -> tuple[int, Tensor]:
        pos, targets = 0, []
        sh, stage = self.shards, self.stage
        for p in window:
            m = p.stop - p.start
            if sh.kind == "npy":
                sh.shards[p.shard].read_into(p.start, p.stop, stage[pos:pos + m])
            else:
                X, y = sh.read_piece(p)
                stage[pos:pos + m] = X
                targets.append(self.encode(y))
            pos += m
        order = (torch.randperm(pos, generator=self.generator).numpy() if self.generator is not None
                 else np.arange(pos))
        if sh.kind == "npy":
            f = sh.features
            X = stage[:pos, f[0]:f[0] + len(f)] if f == list(range(f[0], f[0] + len(f))) else stage[:pos][:, f]
            t = self.encode(np.ascontiguousarray(stage[:pos, sh.target]))
        else:
            X, t = stage[:pos], torch.cat(targets)
        order = torch.from_numpy(order)
        Xt = torch.from_numpy(X) if X.dtype == out.dtype else torch.from_numpy(X).to(torch.from_numpy(out).dtype)
        torch.index_select(Xt, 0, order, out=torch.from_numpy(out)[:pos])   # the gather, off the training thread
        return pos, t[order]

    def _run(self) -> None:
        import queue
        try:
            for window in self.windows:
                while True:
                    if self.stop.is_set():
                        return
                    try:
                        i = self.free.get(timeout=0.1)
                        break
                    except queue.Empty:
                        continue
                w, t = self._fill(self.buffers[i], window)
                self.ready.put((i, w, t))
            self.ready.put(None)
        except BaseException as e:                           # handed to the consumer
            self.ready.put(e)

    def __iter__(self):
        while True:
            item = self.ready.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            i, w, t = item
            yield torch.from_numpy(self.buffers[i])[:w], t, (lambda i=i: self.free.put(i))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
