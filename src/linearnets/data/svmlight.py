r"""Folders of svmlight/libsvm files, streamed: sparse rows larger than memory.

:class:`SvmlightShards` is a :class:`~linearnets.data.shards.Shards` whose files are svmlight text
(``label index:value …`` per line). Opening them makes one pass over every file (NumPy scans the
bytes for line ends; scikit-learn's parser reads the rows a block at a time) and keeps, per file,
the byte offset of every ``GRANULE``-th line, the largest and smallest feature index and the label
counts — memory O(rows / GRANULE), never the rows. Reading rows ``[a, b)`` of a file then parses
only the bytes from the granule before ``a`` to line ``b`` (``load_svmlight_file(offset, length)``).

Subsets (:meth:`~Shards.split`, :meth:`~Shards.part`) work on row ranges exactly as for NPY/Parquet
shards; :func:`sparse_shuffled_batches` shuffles the stream the same way as
:func:`~linearnets.data.shuffle.shuffled_batches` (random blocks into windows of ``buffer_rows``
rows, each window in a random order), holding one window of sparse rows at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.datasets import load_svmlight_file
from torch import Tensor

from ..errors import DataError, FormatError
from .files import SVMLIGHT_SUFFIXES
from .shards import Piece, Shards
from .shuffle import windows_of
from .sparse import CSR

__all__ = ["SvmlightShards", "sparse_shuffled_batches", "SVMLIGHT_SUFFIXES"]

GRANULE = 256                         # a line offset is kept for every GRANULE-th row
SCAN_BYTES = 16 << 20                 # bytes read at a time when scanning for line ends
WIDEST = 2**31 - 1                    # the width a block is parsed at before the files' width is known


def _trailing_blank_lines(path: Path, size: int) -> int:
    """Blank lines at the end of a file (after its last row): not rows."""
    with open(path, "rb") as f:
        f.seek(max(0, size - 4096))
        tail = f.read()
    body = tail.rstrip()
    ends = tail[len(body):].count(b"\n")
    if not body and size > len(tail):                          # 4 KiB of blank lines: count them all
        with open(path, "rb") as f:
            data = f.read()
        body = data.rstrip()
        ends = data[len(body):].count(b"\n")
    return max(0, ends - 1) if body else ends


class _SvmFile:
    """One svmlight file: its rows (lines) and the byte offset of every GRANULE-th one."""

    def __init__(self, path: Path):
        self.path = path
        offsets, n, pos, last = [0], 0, 0, b"\n"
        try:
            with open(path, "rb") as f:
                while chunk := f.read(SCAN_BYTES):
                    ends = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10) + pos + 1   # line starts
                    first = (-(n + 1)) % GRANULE                 # ends[i] starts line n + i + 1: keep multiples
                    offsets.extend(ends[first::GRANULE].tolist() if first < len(ends) else [])
                    n += len(ends)
                    pos += len(chunk)
                    last = chunk[-1:]
        except OSError as e:
            raise DataError(f"{path}: cannot read ({e.strerror})") from None
        if last != b"\n" and pos:                               # a last line without its newline
            n += 1
        n -= _trailing_blank_lines(path, pos)
        self.size, self.n = pos, n
        self.offsets = np.asarray(offsets[:(n - 1) // GRANULE + 1] if n else [0], dtype=np.int64)

    def parse(self, a: int, b: int, d: int | None, zero_based: bool = True):
        """(X CSR (b−a, d), y) of lines [a, b)."""
        g = a // GRANULE
        start = int(self.offsets[g])
        if b < self.n and (b % GRANULE == 0) and b // GRANULE < len(self.offsets):
            stop = int(self.offsets[b // GRANULE])
            extra = 0
        else:                                                   # read to the granule after b, then cut
            g_end = -(-b // GRANULE)
            stop = int(self.offsets[g_end]) if g_end < len(self.offsets) else self.size
            extra = min(g_end * GRANULE, self.n) - b
        offset = max(start - 1, 0)                              # the parser skips to the next line end
        length = stop - 1 - offset if stop < self.size else -1
        try:
            X, y = load_svmlight_file(str(self.path), n_features=d or WIDEST, dtype=np.float64, zero_based=True,
                                      offset=offset, length=length)
        except Exception as e:                                  # untrusted bytes
            msg = (str(e).splitlines() or [type(e).__name__])[0]
            raise FormatError(f"{self.path}: cannot read as svmlight/libsvm ({type(e).__name__}: {msg})") from None
        want = b - a
        skip = a - g * GRANULE
        if X.shape[0] != want + skip + extra:
            raise DataError(f"{self.path}: lines {g * GRANULE}…{b + extra} hold {X.shape[0]} rows, expected "
                            f"{want + skip + extra}; streamed svmlight files must have one row per line "
                            "(no comment or blank lines)")
        X, y = X[skip:skip + want].tocsr(), y[skip:skip + want]
        if not zero_based:
            if X.nnz and int(X.indices.min()) == 0:
                raise DataError(f"{self.path}: holds feature index 0, but the files' indices are one-based")
            X = sp.csr_matrix((X.data, X.indices - 1, X.indptr), shape=(X.shape[0], max(X.shape[1] - 1, 0)))
        return X, y


class SvmlightShards(Shards):
    """A folder (or one file) of svmlight files as one sparse table: ``d`` features (the largest
    index seen, or ``n_features``), the label of each line as the target."""

    sparse = True

    def __init__(self, paths: list[Path], *, name: str | None = None, buffer_rows: int = 16384,
                 block_rows: int = 4096, shuffle: bool = True, n_features: int | None = None,
                 zero_based="auto"):
        if int(buffer_rows) < 0 or int(block_rows) < 1:
            raise DataError(f"shuffle buffer ({buffer_rows} rows) must be ≥ 0 and blocks ({block_rows}) ≥ 1 row")
        if not paths:
            raise DataError("no svmlight files to stream")
        self.buffer_rows, self.block_rows, self.shuffle = int(buffer_rows), int(block_rows), bool(shuffle)
        self.paths = paths
        self.name = name or (paths[0].parent.name if len(paths) > 1 else paths[0].stem)
        self.kind = "svmlight"
        self.columns, self.target, self.weight, self.features = ["label"], 0, None, []
        self.shards = [_SvmFile(p) for p in paths]
        self.starts = np.cumsum([0] + [s.n for s in self.shards])
        self.spans = ((0, int(self.starts[-1])),)
        if self.n == 0:
            raise DataError(f"{paths[0]}: no rows")
        lo, hi, found, nnz = None, -1, {}, 0
        for piece in self.pieces(self.block_rows):                 # one pass: indices, labels, entries
            X, y = self.shards[piece.shard].parse(piece.start, piece.stop, None)
            if X.nnz:
                lo = int(X.indices.min()) if lo is None else min(lo, int(X.indices.min()))
                hi = max(hi, int(X.indices.max()))
            if not np.isfinite(X.data).all():
                raise DataError(f"{self.shards[piece.shard].path}: holds NaN or infinite feature values")
            nnz += X.nnz
            if not np.isfinite(y).all():
                raise DataError(f"{self.shards[piece.shard].path}: holds a NaN or infinite label")
            values, counts = np.unique(y, return_counts=True)
            for v, c in zip(values.tolist(), counts.tolist()):
                found[v] = found.get(v, 0) + c
        self.zero_based = bool(lo == 0 or lo is None) if zero_based == "auto" else bool(zero_based)
        width = hi + 1 if self.zero_based else hi
        if n_features is not None:
            if width > n_features:
                raise DataError(f"{self.name}: uses feature {width}, beyond the model's {n_features} features")
            width = n_features
        self._d = max(int(width), 1)
        self._labels = found
        self.mean_nnz = nnz / max(self.n, 1)
        integral = all(float(v).is_integer() and abs(v) < 2**53 for v in found)
        self._int_labels = integral

    @property
    def d(self) -> int:
        return self._d

    @property
    def row_bytes(self) -> int:
        """Bytes of one row as it is held (CSR entries: value + index, float64 + int32)."""
        return max(1, int(12 * self.mean_nnz) + 8)

    @property
    def feature_names(self):
        return None

    def __repr__(self) -> str:
        return f"SvmlightShards({self.name!r}, {len(self.paths)} file(s), n={self.n}, d={self.d})"

    def read_piece(self, piece: Piece):
        """(X scipy CSR (m, d) float64, y (m,), None) of one piece."""
        shard = self.shards[piece.shard]
        width = self.d + (0 if self.zero_based else 1)
        X, y = shard.parse(piece.start, piece.stop, width, self.zero_based)
        return X, self._label_values(y), None

    def _label_values(self, y: np.ndarray) -> np.ndarray:
        return y.astype(np.int64) if self._int_labels else y

    def targets(self) -> Iterator[np.ndarray]:
        for piece in self.pieces(self.block_rows):
            yield self.read_piece(piece)[1]

    def labels(self, counts: bool = False):
        if self.spans != ((0, int(self.starts[-1])),):            # a subset: count its own rows
            return super().labels(counts)
        present = np.array(sorted(self._labels))
        present = present.astype(np.int64) if self._int_labels else present
        if not counts:
            return present
        return present, np.array([self._labels[v] for v in sorted(self._labels)])


def sparse_shuffled_batches(shards: SvmlightShards, batch_size: int, *, generator: torch.Generator | None,
                            encode: Callable[[np.ndarray], Tensor], dtype: torch.dtype,
                            device: torch.device = torch.device("cpu"), buffer_rows: int = 16384,
                            block_rows: int = 4096) -> Iterator[tuple[CSR, Tensor, None]]:
    """Minibatches ``(X_b CSR (m, d), t_b (m,), None)`` of one epoch of sparse shards, shuffled as
    :func:`~linearnets.data.shuffle.shuffled_batches` shuffles dense ones (a window holding every
    row gives the permutation an in-memory epoch draws from the same generator). Memory: one
    window of sparse rows and the batch left over from the one before."""
    B = int(batch_size)
    carry: tuple[CSR, Tensor] | None = None
    for window in windows_of(shards, int(block_rows), buffer_rows, generator):
        parts = [shards.read_piece(p) for p in window]
        Xw = CSR.from_scipy(sp.vstack([x for x, _, _ in parts], format="csr"), dtype, device)
        tw = encode(np.concatenate([y for _, y, _ in parts])).to(device)
        if generator is not None:
            order = torch.randperm(Xw.shape[0], generator=generator).to(device)
            Xw, tw = Xw.index_select(0, order), tw.index_select(0, order)
        s = 0
        if carry is not None:
            s = min(B - carry[0].shape[0], Xw.shape[0])
            carry = (CSR.cat([carry[0], Xw[0:s]]), torch.cat([carry[1], tw[:s]]))
            if carry[0].shape[0] == B:
                yield carry[0], carry[1], None
                carry = None
        while s < Xw.shape[0]:
            Xb, tb = Xw[s:s + B], tw[s:s + B]
            s += B
            if Xb.shape[0] < B:
                carry = (Xb, tb)
                break
            yield Xb, tb, None
    if carry is not None:
        yield carry[0], carry[1], None
