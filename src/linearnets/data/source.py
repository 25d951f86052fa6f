r"""Data sources: where training and evaluation get their rows — in memory, streamed from
NPY/Parquet shards, one rank's share of either, or the shares of P simulated ranks.

Every source yields :class:`Block`\ s, in two ways::

    source.chunks()                          # the rows once, in order (full-batch sums, metrics)
    source.batches(epoch, batch_size, seed)  # one epoch of shuffled minibatches

A block carries the features ``X`` (m, d) in the training dtype and the targets in the
class-major layout of :mod:`linearnets.data.targets`: ``T`` (labels (m,) or Tᵀ (k, m)) and
``labels`` (m,) for accuracy (None for regression).

**Ranks.** ``source.part(r, P)`` is rank r's contiguous share, rows ``rank_range(n, r, P)``. Each
rank shuffles its own rows with the generator of (seed, epoch, r), and every rank takes
:meth:`DataSource.steps_per_epoch` steps — ⌈(rows of the largest share) / B⌉ — sending empty
batches once its rows run out, so the ranks stay in step. :class:`Interleaved` replays, in one
process, the order of a P-rank run: batch t is the P ranks' batches t, concatenated.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.model_selection import train_test_split
from torch import Tensor

from ..errors import ConfigError, DataError
from .arrays import as_tensor
from .shards import Shards
from .shuffle import derived_seed, epoch_generator, rank_range, shuffled_batches
from .sparse import CSR, column_moments
from .svmlight import sparse_shuffled_batches
from .targets import Targets

__all__ = ["Block", "DataSource", "InMemory", "Streamed", "Interleaved", "concat_blocks", "holdout",
           "standardized", "feature_moments", "merge_moments"]

SPARSE_WINDOW = 65536            # sparse minibatches: rows gathered at once in an epoch's order
CHUNK_BYTES = 4 << 20            # full-batch chunks: forward and backward product read them from cache


class Block(NamedTuple):
    X: Tensor | CSR              # (m, d), dense or sparse rows
    T: Tensor                    # labels (m,) int64, or Tᵀ (k, m)
    labels: Tensor | None        # (m,) int64 class of each row; None for regression
    w: Tensor | None = None      # (m,) sample weights ≥ 0 (sample_weight × class_weight); None: all 1

    @property
    def m(self) -> int:
        return self.X.shape[0]

    @property
    def mass(self) -> float:
        """Σ w over the rows (their number when unweighted): the block's share of a mean."""
        return float(self.w.sum()) if self.w is not None else float(self.X.shape[0])


def _cat(parts):
    return None if parts[0] is None else torch.cat(parts)


def concat_blocks(blocks: list[Block]) -> Block:
    X = CSR.cat([b.X for b in blocks]) if isinstance(blocks[0].X, CSR) else torch.cat([b.X for b in blocks])
    T = torch.cat([b.T for b in blocks], dim=0 if blocks[0].T.ndim == 1 else 1)
    return Block(X, T, _cat([b.labels for b in blocks]), _cat([b.w for b in blocks]))


def holdout(n: int, fraction: float, seed: int, labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, validation rows): a seeded random ``fraction`` of ``n`` rows held out —
    stratified by ``labels`` when every class has at least two rows (so each class keeps its
    share), plain random otherwise. Indices are sorted."""
    if not (isinstance(fraction, (int, float)) and 0.0 < fraction < 1.0):
        raise ConfigError(f"Invalid validation fraction: {fraction!r}; use a number in (0, 1)")
    n_val = max(1, int(round(fraction * n)))
    if n_val >= n:
        raise DataError(f"holding out {fraction:.0%} of {n} rows leaves no training data")
    rows = np.arange(n)
    stratify = None
    if labels is not None:
        _, counts = np.unique(labels, return_counts=True)
        if counts.min() >= 2 and len(counts) <= n_val and len(counts) <= n - n_val:
            stratify = labels
    train, val = train_test_split(rows, test_size=n_val, random_state=derived_seed(seed, 1), stratify=stratify)
    return np.sort(train), np.sort(val)


def standardized(X: Tensor | CSR, transform, copy: bool = False) -> Tensor | CSR:
    """(X − mean) / scale in X's dtype — in place unless ``copy`` — for ``transform = (mean, scale)``
    (float64 tensors (d,); a constant feature has scale 1, as scikit-learn's StandardScaler).
    Sparse rows are only scaled (their transform has mean 0: centring would densify them)."""
    mean, scale = transform
    if isinstance(X, CSR):
        return X.scale_columns(scale)
    X = X.clone() if copy else X
    return X.sub_(mean.to(X)).div_(scale.to(X))


def feature_moments(rows, comm=None) -> tuple[Tensor, Tensor]:
    """(mean (d,), population variance (d,)) of the features, float64: of an array in one go, of
    shards block by block (Chan's merge: no cancellation) — each rank its share, then merged.
    Sparse rows (scipy.sparse, a :class:`CSR`, svmlight shards): from Σx and Σx² per column."""
    if isinstance(rows, CSR) or sp.issparse(rows) or getattr(rows, "sparse", False):
        if isinstance(rows, Shards):
            world = comm.world_size if comm is not None else 1
            mine = rows.part(comm.rank, world) if world > 1 else rows
            blocks = (CSR.from_scipy(X, torch.float64) for X, _, _ in mine.blocks(mine.block_rows))
        else:
            blocks = [rows if isinstance(rows, CSR) else CSR.from_scipy(rows, torch.float64)]
        d = rows.d if isinstance(rows, Shards) else rows.shape[1]
        s1, s2, n = torch.zeros(d, dtype=torch.float64), torch.zeros(d, dtype=torch.float64), 0.0
        for X in blocks:
            a, b, m = column_moments(X)
            s1, s2, n = s1 + a, s2 + b, n + m
        if isinstance(rows, Shards) and comm is not None and comm.world_size > 1:
            total = torch.cat([s1, s2, torch.tensor([n], dtype=torch.float64)])
            comm.sum_(total)
            s1, s2, n = total[:d], total[d:2 * d], float(total[-1])
        mean = s1 / max(n, 1.0)
        return mean, (s2 / max(n, 1.0) - mean.square()).clamp(min=0.0)
    if not isinstance(rows, Shards):
        X = as_tensor(np.asarray(rows), torch.float64, "cpu")
        return X.mean(dim=0), X.var(dim=0, correction=0)
    world = comm.world_size if comm is not None else 1
    mine = rows.part(comm.rank, world) if world > 1 else rows
    n, mean, m2 = 0.0, torch.zeros(rows.d, dtype=torch.float64), torch.zeros(rows.d, dtype=torch.float64)
    for X, _, _ in mine.blocks(chunk_rows_for(rows.d, torch.float64)):
        Xb = torch.as_tensor(np.asarray(X), dtype=torch.float64)
        n, mean, m2 = merge_moments(n, mean, m2, Xb.shape[0], Xb.mean(dim=0), Xb.var(dim=0, correction=0) * Xb.shape[0])
    if world > 1:
        gathered = comm.all_gather_object((n, mean, m2))
        n, mean, m2 = 0.0, torch.zeros_like(mean), torch.zeros_like(m2)
        for theirs in gathered:
            n, mean, m2 = merge_moments(n, mean, m2, *theirs)
    return mean, m2 / max(n, 1.0)


def merge_moments(na, mean_a, m2_a, nb, mean_b, m2_b):
    """Chan's update: two groups' (count or mass, mean, Σ (x − mean)²) → those of their union, with no
    cancellation when |mean| ≫ spread."""
    if not nb:
        return na, mean_a, m2_a
    if not na:
        return float(nb), mean_b, m2_b
    n = na + nb
    delta = mean_b - mean_a
    return n, mean_a + delta * (nb / n), m2_a + m2_b + delta.square() * (na * nb / n)


def sparse_chunk_rows(X: CSR) -> int:
    """Rows of a ~4 MiB chunk of sparse rows (by their stored entries)."""
    per_row = X.byte_size() / max(1, X.shape[0])
    return max(1, int(CHUNK_BYTES // max(per_row, 1.0)))


def chunk_rows_for(d: int, dtype: torch.dtype) -> int:
    """Rows of a ~4 MiB chunk (at least one row): memory set by bytes, never by a row count."""
    return max(1, CHUNK_BYTES // max(1, d * torch.finfo(dtype).bits // 8))


class DataSource:
    """What the training loop, the full-batch passes and the metrics read rows from.

    ``n`` rows (of this rank), ``d`` features, ``k`` outputs or classes, ``dtype``, ``device``;
    ``targets`` is the encoder (:class:`~linearnets.data.targets.Targets`) its blocks follow.
    ``rank`` seeds the shuffle; ``shares`` are the row counts of every rank's share (one
    entry for a source that is not split), so every rank agrees on the number of steps.
    """

    n: int
    d: int
    targets: Targets
    dtype: torch.dtype
    device: torch.device
    rank: int = 0
    shares: tuple[int, ...] = ()
    name: str = "the data"
    feature_names: tuple[str, ...] | None = None
    sparse: bool = False         # blocks carry a CSR X

    @property
    def k(self) -> int:
        return self.targets.k

    def column(self, j: int) -> str:
        """How to name feature column ``j`` in a message."""
        return repr(self.feature_names[j]) if self.feature_names else str(j)

    def bad_values(self, X: Tensor | None = None) -> str | None:
        """What is wrong with the features — of block ``X``, or of every row — when something is:
        NaN, infinity (a value beyond the training dtype becomes one), or values so large that their
        squares overflow the dtype (|x| > √max). None when the features are fine. Called on the
        error path only (a loss or gradient that is not finite), so it costs nothing otherwise."""
        blocks = [X] if X is not None else (b.X for b in self.chunks())
        limit = math.sqrt(torch.finfo(self.dtype).max)
        for Xb in blocks:
            if not Xb.numel():
                continue
            if isinstance(Xb, CSR):                     # the stored entries, by column
                Xb = Xb.val, Xb.col.long()
            bad = ~torch.isfinite(Xb[0] if isinstance(Xb, tuple) else Xb)
            if bad.any():
                j = (int(Xb[1][bad.nonzero()[0, 0]]) if isinstance(Xb, tuple)
                     else int(bad.any(dim=0).nonzero()[0, 0]))
                return (f"{self.name}: feature column {self.column(j)} holds NaN, infinity or a missing value "
                        f"(or a value beyond {str(self.dtype).removeprefix('torch.')}'s range); remove or impute it")
            if isinstance(Xb, tuple):
                big = torch.zeros(self.d, dtype=Xb[0].dtype, device=Xb[0].device).scatter_reduce_(
                    0, Xb[1], Xb[0].abs(), "amax")
            else:
                big = Xb.abs().amax(dim=0)
            if bool((big > limit).any()):
                j = int((big > limit).nonzero()[0, 0])
                return (f"{self.name}: feature column {self.column(j)} holds {float(big[j]):.3g}, too large for "
                        f"{str(self.dtype).removeprefix('torch.')} arithmetic (|x| ≤ {limit:.3g}); standardize or "
                        "rescale it")
        return None

    @property
    def classification(self) -> bool:
        return self.targets.classification

    def chunks(self) -> Iterator[Block]:
        raise NotImplementedError

    weighted: bool = False

    def mass(self) -> float:
        """Σ w over this source's rows (their number when unweighted)."""
        return float(self.n) if not self.weighted else sum(b.mass for b in self.chunks())

    def fingerprint(self) -> str:
        """A digest of the rows' content (BLAKE2b over every byte: one value changed changes it)."""
        raise NotImplementedError

    def _epoch(self, epoch: int, batch_size: int, seed: int) -> Iterator[Block]:
        raise NotImplementedError

    def part(self, rank: int, world_size: int) -> "DataSource":
        raise NotImplementedError

    def steps_per_epoch(self, batch_size: int) -> int:
        return math.ceil(max(self.shares or (self.n,)) / int(batch_size))

    def batches(self, epoch: int, batch_size: int, seed: int) -> Iterator[Block]:
        """Exactly :meth:`steps_per_epoch` minibatches of this source's rows in the order of
        (seed, epoch, rank); empty ones (m = 0) once the rows are used up."""
        B = int(batch_size)
        yield from itertools.islice(itertools.chain(self._epoch(epoch, B, seed), itertools.repeat(self.empty())),
                                    self.steps_per_epoch(B))

    def empty(self) -> Block:
        raise NotImplementedError

    def _shares(self, world_size: int) -> tuple[int, ...]:
        return tuple(b - a for a, b in (rank_range(self.n, r, world_size) for r in range(world_size)))


def _sparse_batches(X: CSR, perm: Tensor, B: int) -> Iterator[CSR]:
    """The rows ``perm`` of X, B at a time: gathered SPARSE_WINDOW rows at once (one vectorised
    gather instead of one per batch: ~70 µs a step at B = 32), then sliced (views)."""
    window = max(B, SPARSE_WINDOW // B * B)
    for a in range(0, perm.shape[0], window):
        Xs = X.index_select(0, perm[a:a + window])
        if Xs.col.dtype != torch.int64:                            # int64 columns: no conversion per step
            Xs = CSR(Xs.crow, Xs.col.long(), Xs.val, Xs.shape)
        for s in range(0, Xs.shape[0], B):
            yield Xs[s:s + B]


class InMemory(DataSource):
    """Rows held in memory: ``X`` (n, d) and encoded targets ``T``, ``labels``."""

    def __init__(self, X: Tensor, T: Tensor, labels: Tensor | None, targets: Targets, *, w: Tensor | None = None,
                 rank: int = 0, shares: tuple[int, ...] = (), feature_names=None, name: str = "X"):
        if X.ndim != 2 or X.shape[0] != T.shape[-1]:
            raise DataError(f"X (n, d) and targets for n rows expected, got X {tuple(X.shape)} and "
                            f"targets {tuple(T.shape)}")
        self.X, self.T, self.labels, self.targets, self.w = X, T, labels, targets, w
        self.sparse = isinstance(X, CSR)
        self.weighted = w is not None
        self.rank, self.shares = rank, shares or (X.shape[0],)
        self.feature_names = None if feature_names is None else tuple(map(str, feature_names))
        self.name = name
        self.chunk_rows = (sparse_chunk_rows(X) if isinstance(X, CSR) else chunk_rows_for(X.shape[1], X.dtype))

    @classmethod
    def from_arrays(cls, X, y, targets: Targets, *, dtype: torch.dtype, device=None, name: str = "X",
                    feature_names=None, unknown: str = "error", sample_weight=None, transform=None) -> "InMemory":
        """NumPy (or torch) features and raw targets, encoded by ``targets``; ``sample_weight`` (n,)
        ≥ 0 (times the targets' class weights); ``transform``: (mean, scale) to standardise X.
        scipy.sparse features become a :class:`~linearnets.data.sparse.CSR` (never densified)."""
        if sp.issparse(X):
            Xt = CSR.from_scipy(X, dtype, device)
        elif isinstance(X, (Tensor, CSR)):
            Xt = X.to(dtype=dtype, device=device)
        else:
            Xt = as_tensor(X, dtype, device)
        if transform is not None:
            Xt = standardized(Xt, transform, copy=True)
        T, labels = targets.encode(y, dtype, device, name="y", unknown=unknown)
        w = None if sample_weight is None else as_tensor(np.asarray(sample_weight, dtype=np.float64), dtype, device)
        return cls(Xt, T, labels, targets, w=targets.weights(labels, w, dtype), feature_names=feature_names,
                   name=name)

    n = property(lambda self: self.X.shape[0])
    d = property(lambda self: self.X.shape[1])
    dtype = property(lambda self: self.X.dtype)
    device = property(lambda self: self.X.device)

    def _cols(self, T: Tensor, a, b=None) -> Tensor:
        """Rows a:b (or an index tensor ``a``) of class-major targets."""
        if b is None:
            return T.index_select(0 if T.ndim == 1 else 1, a)
        return T[a:b] if T.ndim == 1 else T[:, a:b]

    def rows(self, index: Tensor) -> "InMemory":
        """The rows ``index`` (a new source)."""
        index = index.to(self.X.device)
        pick = lambda t: None if t is None else t.index_select(0, index)            # noqa: E731
        return InMemory(self.X.index_select(0, index), self._cols(self.T, index), pick(self.labels), self.targets,
                        w=pick(self.w), feature_names=self.feature_names, name=self.name)

    def _slice(self, a: int, b: int) -> Block:
        cut = lambda t: None if t is None else t[a:b]                              # noqa: E731
        return Block(self.X[a:b], self._cols(self.T, a, b), cut(self.labels), cut(self.w))

    def empty(self) -> Block:
        return self._slice(0, 0)

    def mass(self) -> float:
        return float(self.n) if self.w is None else float(self.w.sum())

    def fingerprint(self) -> str:
        h = hashlib.blake2b(digest_size=16)
        parts = (self.X.crow, self.X.col, self.X.val) if isinstance(self.X, CSR) else (self.X,)
        for t in (*parts, self.T, self.labels, self.w):
            if t is not None:
                h.update(str((tuple(t.shape), t.dtype)).encode())
                h.update(memoryview(t.detach().cpu().contiguous().numpy()).cast("B"))
        return h.hexdigest()

    def chunks(self) -> Iterator[Block]:
        for s in range(0, self.n, self.chunk_rows):
            yield self._slice(s, s + self.chunk_rows)

    def _epoch(self, epoch, B, seed):
        perm = torch.randperm(self.n, generator=epoch_generator(seed, epoch, self.rank)).to(self.device)
        T = self._cols(self.T, perm)                       # this epoch's order, permuted once
        T_b = T.split(B, dim=0 if T.ndim == 1 else 1)
        if self.labels is None:
            L_b = itertools.repeat(None)
        else:                                              # hard labels: the labels are T itself
            L_b = T_b if T.ndim == 1 else self.labels.index_select(0, perm).split(B)
        W_b = itertools.repeat(None) if self.w is None else self.w.index_select(0, perm).split(B)
        if isinstance(self.X, CSR):
            X_b = _sparse_batches(self.X, perm, B)
        else:
            X_b = (self.X.index_select(0, idx) for idx in perm.split(B))
        for Xb, Tb, Lb, Wb in zip(X_b, T_b, L_b, W_b):
            yield Block(Xb, Tb, Lb, Wb)

    def part(self, rank: int, world_size: int) -> "InMemory":
        lo, hi = rank_range(self.n, rank, world_size)
        block = self._slice(lo, hi)
        return InMemory(block.X, block.T, block.labels, self.targets, w=block.w, rank=rank,
                        shares=self._shares(world_size), feature_names=self.feature_names, name=self.name)


class Streamed(DataSource):
    """Rows streamed from :class:`~linearnets.data.shards.Shards` (or a subset of them), encoded
    block by block. Full-batch work reads chunks in file order; minibatches come from
    :func:`~linearnets.data.shuffle.shuffled_batches` with the shards' ``buffer_rows``,
    ``block_rows`` and ``shuffle``. Memory does not depend on the number of rows."""

    def __init__(self, shards: Shards, targets: Targets, *, dtype: torch.dtype, device=None, rank: int = 0,
                 shares: tuple[int, ...] = (), unknown: str = "error", transform=None):
        if not targets.classification and targets.k != 1:
            raise DataError(f"{shards.name}: shards hold one target column, but the model has {targets.k} outputs")
        self.shards, self.targets, self.unknown, self.transform = shards, targets, unknown, transform
        self.weighted = shards.weight is not None or targets.class_weights is not None
        self.dtype, self.device = dtype, torch.device(device or "cpu")
        self.rank, self.shares = rank, shares or (shards.n,)
        self.sparse = shards.sparse
        self.chunk_rows = (max(1, CHUNK_BYTES // shards.row_bytes) if shards.sparse
                           else chunk_rows_for(shards.d, dtype))

    n = property(lambda self: self.shards.n)
    d = property(lambda self: self.shards.d)
    name = property(lambda self: self.shards.name)
    feature_names = property(lambda self: tuple(self.shards.columns[j] for j in self.shards.features))

    def fingerprint(self) -> str:
        """Digest of every shard file's bytes, the rows used and the target column."""
        h = hashlib.blake2b(digest_size=16)
        for path in self.shards.paths:
            with open(path, "rb") as f:
                h.update(hashlib.file_digest(f, "blake2b").digest())
        h.update(str((self.shards.spans, self.shards.target, self.shards.columns)).encode())
        return h.hexdigest()

    def _target_name(self) -> str:
        return f"{self.shards.name} (column {self.shards.target_name!r})"

    def encode(self, y: np.ndarray) -> Tensor:
        """A block's raw target column → class indices (int64) or values (float64)."""
        return self.targets.column(np.asarray(y), self._target_name(), self.unknown)

    def block(self, X: Tensor, t: Tensor, w: Tensor | None = None) -> Block:
        """Features, encoded targets (m,) and the weight column → a block in this source's dtype and
        layout (standardised in place when the source has a transform: X is a fresh copy or a window
        buffer's rows, used once)."""
        T, labels = self.targets.layout(t, self.dtype, self.device, self._target_name())
        if self.transform is not None:
            X = standardized(X, self.transform)
        if w is not None:
            w = w.to(device=self.device, dtype=self.dtype)
            if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
                raise DataError(f"{self.shards.name}: the weight column {self.shards.columns[self.shards.weight]!r} "
                                "holds negative, NaN or infinite values; weights must be finite and ≥ 0")
        return Block(X, T, labels, self.targets.weights(labels, w, self.dtype))

    def empty(self) -> Block:
        X = torch.empty(0, self.d, dtype=self.dtype, device=self.device)
        if self.sparse:
            X = CSR.from_scipy(sp.csr_matrix((0, self.d)), self.dtype, self.device)
        w = torch.empty(0, dtype=torch.float64) if self.shards.weight is not None else None
        return self.block(X, torch.empty(0, dtype=torch.int64 if self.classification else torch.float64), w)

    def chunks(self) -> Iterator[Block]:
        for X, y, w in self.shards.blocks(self.chunk_rows):
            if self.sparse:
                Xc = CSR.from_scipy(X, self.dtype, self.device)
            else:
                Xc = torch.from_numpy(X).to(device=self.device, dtype=self.dtype).contiguous()   # one copy
            yield self.block(Xc, self.encode(y), None if w is None else torch.from_numpy(np.asarray(w, np.float64)))

    def _epoch(self, epoch, B, seed):
        sh = self.shards
        gen = epoch_generator(seed, epoch, self.rank) if sh.shuffle else None
        if self.sparse:
            for Xb, tb, wb in sparse_shuffled_batches(sh, B, generator=gen, encode=self.encode, dtype=self.dtype,
                                                      device=self.device, buffer_rows=sh.buffer_rows,
                                                      block_rows=sh.block_rows):
                yield self.block(Xb, tb, wb)
            return
        for Xb, tb, wb in shuffled_batches(sh, B, generator=gen, encode=self.encode, dtype=self.dtype,
                                           device=self.device, buffer_rows=sh.buffer_rows, block_rows=sh.block_rows,
                                           views=True):
            yield self.block(Xb, tb, wb)

    def part(self, rank: int, world_size: int) -> "Streamed":
        return Streamed(self.shards.part(rank, world_size), self.targets, dtype=self.dtype, device=self.device,
                        rank=rank, shares=self._shares(world_size), unknown=self.unknown, transform=self.transform)


class Interleaved(DataSource):
    """The P shares of ``source`` as one source: replays, in one process, the sample order of a
    P-rank data-parallel run (``simulate_ranks``). Batch t = the ranks' batches t, concatenated —
    one SGD step over up to P·B rows, as the all-reduce makes it."""

    def __init__(self, source: DataSource, world_size: int):
        self.parts = [source.part(r, world_size) for r in range(world_size)]
        self.targets, self.dtype, self.device = source.targets, source.dtype, source.device
        self.n, self.d, self.name, self.feature_names = source.n, source.d, source.name, source.feature_names
        self.weighted, self.sparse = source.weighted, source.sparse
        self.shares = self.parts[0].shares

    def chunks(self) -> Iterator[Block]:
        for part in self.parts:
            yield from part.chunks()

    def batches(self, epoch: int, batch_size: int, seed: int) -> Iterator[Block]:
        for group in zip(*(p.batches(epoch, batch_size, seed) for p in self.parts)):
            full = [b for b in group if b.m]
            yield concat_blocks(full) if full else group[0]

    def part(self, rank: int, world_size: int) -> "DataSource":
        raise DataError("a source that simulates ranks cannot be split across real ranks")
