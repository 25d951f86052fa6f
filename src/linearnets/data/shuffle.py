r"""The order of the rows: per-epoch generators, ranks' shares, and shuffled streams.

Every epoch's order is drawn from a generator seeded by (seed, epoch, rank) alone
(:func:`epoch_generator`), so any epoch can be replayed — on resume, or by another process.

* In memory, an epoch is one uniform permutation ``randperm(n, generator)``.
* A stream (:func:`shuffled_batches`) cuts the rows into blocks, visits the blocks in random
  order, and emits windows of ``buffer_rows`` rows each in random order. When the window holds
  every row, the stream draws exactly the in-memory permutation — so the same data trains to
  the same bits from an array or from its NPY/Parquet shards.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from .. import memory

__all__ = ["epoch_generator", "derived_seed", "rank_range", "shuffled_batches", "BLOCK_BYTES"]

BLOCK_BYTES = 64 << 20           # the most one block read may take, whatever --block-rows says


def epoch_generator(seed: int, epoch: int, rank: int = 0) -> torch.Generator:
    """The generator that shuffles epoch ``epoch`` of rank ``rank``: a function of the three
    numbers only (numpy's SeedSequence mixes them), so any epoch can be replayed on resume."""
    state = np.random.SeedSequence([int(seed), int(epoch), int(rank)]).generate_state(2)
    return torch.Generator().manual_seed(int(state[0]) << 31 ^ int(state[1]))


def derived_seed(seed: int, *keys: int) -> int:
    """A 32-bit seed mixed from ``seed`` (at full width) and ``keys``, for libraries that take one."""
    return int(np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(1)[0])


def rank_range(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rows ``[⌊r n / P⌋, ⌊(r+1) n / P⌋)``: the contiguous part of ``n`` rows rank r owns."""
    return (rank * n) // world_size, ((rank + 1) * n) // world_size


def windows_of(shards, block_rows: int, buffer_rows: int, generator) -> list[list]:
    """The epoch's blocks of ``block_rows`` rows, in a random order (with a generator, unless one
    window holds them all), cut into windows of at most ``buffer_rows`` rows (at least one block each)."""
    pieces = shards.pieces(block_rows)
    W = max(int(buffer_rows), block_rows)
    if generator is not None and sum(p.rows for p in pieces) > W:
        pieces = [pieces[i] for i in torch.randperm(len(pieces), generator=generator).tolist()]
    windows, cur, rows = [], [], 0
    for p in pieces:
        if cur and rows + p.rows > W:
            windows.append(cur)
            cur, rows = [], 0
        cur.append(p)
        rows += p.rows
    if cur:
        windows.append(cur)
    return windows


def shuffled_batches(shards, batch_size: int, *, generator: torch.Generator | None,
                     encode: Callable[[np.ndarray], Tensor], dtype: torch.dtype,
                     device: torch.device = torch.device("cpu"), buffer_rows: int = 16384,
                     block_rows: int = 4096, views: bool = False) -> Iterator[tuple[Tensor, Tensor, Tensor | None]]:
    r"""Minibatches ``(X_b (m, d), t_b (m,), w_b (m,) or None)`` of the rows of ``shards`` (a
    :class:`~linearnets.data.shards.Shards`, possibly a subset) for one epoch.

    With a ``generator`` (shuffling):

    1. the rows are cut into blocks of ``block_rows`` consecutive rows (never across shards),
       and the blocks are visited in a random order — unless one window holds them all;
    2. consecutive blocks of that order fill a *window* of up to ``buffer_rows`` rows
       (at least one block);
    3. each window is emitted in a uniformly random order, in batches of ``batch_size``
       (a batch may span two windows; only the last batch of the epoch is short).

    So every row is seen exactly once per epoch, each window mixes rows from
    ``buffer_rows / block_rows`` random places of the data, and ``buffer_rows ≥ n`` gives one
    uniform random permutation — the one an in-memory epoch draws from the same generator.
    With ``generator=None`` rows come in file order. ``encode`` maps a block's raw targets to a
    tensor (class indices or values); ``w_b`` is the shards' weight column (float64), if they have one.

    A background thread prepares the next window while the current one is trained on: it
    reads the blocks (NPY: the kernel copies them straight into a staging buffer) and
    gathers the rows in their shuffled order into a window buffer, so batches are
    contiguous slices. ``views=True`` yields those slices themselves (valid until the next
    batch is requested; the trainer uses them at once), else copies. Memory: three windows.
    """
    row_bytes = shards.row_bytes
    block_rows = max(1, min(int(block_rows), BLOCK_BYTES // row_bytes))     # a block is read whole: bound it
    windows = windows_of(shards, block_rows, buffer_rows, generator)
    largest = max((sum(p.rows for p in w) for w in windows), default=1)      # ≤ W rows
    per_row = row_bytes + 2 * shards.d * torch.finfo(dtype).bits // 8      # staging + two window buffers
    memory.require(largest * per_row, f"a shuffle window of {largest} rows of {shards.name}",
                   f"use a smaller shuffle buffer (buffer_rows, --shuffle-buffer; at most about "
                   f"{max(1, memory.budget_bytes() // per_row)} rows here)")
    reader = _WindowReader(shards, windows, largest, encode, generator, dtype)
    B = int(batch_size)
    carry: tuple | None = None
    move = lambda parts: tuple(None if p is None else p.to(device) for p in parts)     # noqa: E731
    try:
        for X, t, w, release in reader:
            rows, s = X.shape[0], 0
            if carry is not None:                            # complete the batch left by the last window
                s = min(B - carry[0].shape[0], rows)
                carry = tuple(None if c is None else torch.cat([c, p[:s]]) for c, p in zip(carry, (X, t, w)))
                if carry[0].shape[0] == B:
                    yield move(carry)
                    carry = None
            while s < rows:
                batch = tuple(None if p is None else p[s:s + B] for p in (X, t, w))
                s += B
                if batch[0].shape[0] < B:
                    carry = tuple(None if p is None else p.clone() for p in batch)
                    break
                if device.type != "cpu":                       # the transfer copies
                    yield move(batch)
                else:
                    yield batch if views else tuple(None if p is None else p.clone() for p in batch)
            release()
        if carry is not None:
            yield move(carry)
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

    def __init__(self, shards, windows: list, W: int, encode, generator, dtype: torch.dtype):
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

    def _fill(self, out: np.ndarray, window: list) -> tuple[int, Tensor, Tensor | None]:
        pos, targets, weights = 0, [], []
        sh, stage = self.shards, self.stage
        for p in window:
            m = p.stop - p.start
            if sh.kind == "npy":
                sh.shards[p.shard].read_into(p.start, p.stop, stage[pos:pos + m])
            else:
                X, y, w = sh.read_piece(p)
                stage[pos:pos + m] = X
                targets.append(self.encode(y))
                weights.append(w)
            pos += m
        order = (torch.randperm(pos, generator=self.generator).numpy() if self.generator is not None
                 else np.arange(pos))
        if sh.kind == "npy":
            X, y, w = sh.split_row(stage[:pos])
            t = self.encode(np.ascontiguousarray(y))
        else:
            X, t = stage[:pos], torch.cat(targets)
            w = None if sh.weight is None else np.concatenate(weights)
        order = torch.from_numpy(order)
        Xt = torch.from_numpy(X) if X.dtype == out.dtype else torch.from_numpy(X).to(torch.from_numpy(out).dtype)
        torch.index_select(Xt, 0, order, out=torch.from_numpy(out)[:pos])   # the gather, off the training thread
        wt = None if w is None else torch.from_numpy(np.asarray(w, dtype=np.float64))[order]
        return pos, t[order], wt

    def _run(self) -> None:
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
                self.ready.put((i, *self._fill(self.buffers[i], window)))
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
            i, rows, t, w = item
            yield torch.from_numpy(self.buffers[i])[:rows], t, w, (lambda i=i: self.free.put(i))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
