r"""The training problem: data, a loss and an L2 penalty on W — and its derivatives.

The objective of every model here::

    F(W, b) = L(X W + b, Y) + (λ/2) ||W||²_F          (λ = weight_decay; b is not penalised)

with L the *mean* loss over the n samples (:mod:`linearnets.losses`). With
``G = dL/dZ`` (n, k) and ``X̃ = [X, 1]`` (n, d+1)::

    ∇_W F = Xᵀ G + λ W        (d, k)
    ∇_b F = 1ᵀ G              (k,)
    ∇²F   = Σ_i (x̃_i x̃_iᵀ) ⊗ H_i + λ (I_d ⊕ 0) ⊗ I_k    ((d+1)k × (d+1)k, θ = vec([W; b]))

where ``H_i = d²L/dZ_i²`` (k, k). Every full-batch quantity is accumulated over
chunks of rows, so memory is bounded by a chunk plus the result: :class:`StreamProblem`
reads its chunks from disk through the same :meth:`Problem.chunks`.

**Ranks.** In a data-parallel run (``comm`` given) each rank's problem holds its own rows
only; sums are all-reduced and divided by the total count ``n_total``, so every rank
computes the same F, ∇F and ∇²F as one process holding all rows. Minibatches: rank r
shuffles its own rows (generator of (seed, epoch, r)) and step t uses rank r's batch t;
together the ranks make one global batch of up to P·B rows. ``simulate_ranks=P`` replays
exactly that order in a single process (batch t = the ranks' batches t, concatenated).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from functools import cached_property

import torch
from torch import Tensor

from .losses import Loss, SquaredError, one_hot, smooth_labels
from .params import Params

__all__ = ["Problem", "StreamProblem"]


class Problem:
    """In-memory training data ``X`` (n, d), targets ``Y`` (n, k), a loss and ``weight_decay``.

    ``Y`` holds regression targets, or probability rows for classification (one-hot
    for hard labels). ``chunk_rows`` bounds the rows touched at once by full-batch work;
    by default a chunk is about 4 MiB, so that the forward and the backward product of a
    chunk read it from cache: a full-batch gradient reads X from memory once.
    """

    CHUNK_BYTES = 4 << 20
    streamed = False

    def __init__(self, X: Tensor, Y: Tensor, loss: Loss, weight_decay: float = 0.0,
                 *, chunk_rows: int | None = None, comm=None, simulate_ranks: int = 1):
        if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
            raise ValueError(f"X (n, d) and Y (n, k) expected, got {tuple(X.shape)} and {tuple(Y.shape)}")
        self.X, self.Y, self.loss = X, Y, loss
        self.weight_decay = float(weight_decay)
        if chunk_rows is None:
            chunk_rows = max(256, self.CHUNK_BYTES // max(1, X.shape[1] * X.element_size()))
        self.chunk_rows = int(chunk_rows)
        self._set_ranks(comm, simulate_ranks)

    def _set_ranks(self, comm, simulate_ranks: int) -> None:
        self.comm = comm if comm is not None and comm.world_size > 1 else None
        self.rank, self.world_size = (comm.rank, comm.world_size) if self.comm else (0, 1)
        if int(simulate_ranks) < 1 or (self.comm and simulate_ranks != 1):
            raise ValueError("simulate_ranks must be a positive integer, and 1 in a distributed run")
        self.simulate_ranks = int(simulate_ranks)
        counts = torch.zeros(max(self.world_size, 1), dtype=torch.float64)
        counts[self.rank] = self.n
        if self.comm:
            self.comm.sum_(counts)
        self.rank_sizes = [int(c) for c in counts]          # rows of each rank
        self.n_total = sum(self.rank_sizes)

    def _reduce(self, *tensors: Tensor) -> None:
        if self.comm is not None:
            self.comm.sum_(*tensors)

    # sizes -------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def d(self) -> int:
        return self.X.shape[1]

    @property
    def k(self) -> int:
        return self.Y.shape[1]

    @property
    def dtype(self) -> torch.dtype:
        return self.X.dtype

    @property
    def device(self) -> torch.device:
        return self.X.device

    def chunks(self) -> Iterator[tuple[Tensor, Tensor]]:
        """Consecutive row blocks ``(X_c, Y_c)`` covering the data once, in order."""
        for s in range(0, self.n, self.chunk_rows):
            yield self.X[s:s + self.chunk_rows], self.Y[s:s + self.chunk_rows]

    @cached_property
    def targets(self) -> Tensor:
        """The targets in the class-major layout the fast paths use: integer labels (n,) when
        every row of Y is one-hot (the losses then skip the dense rows), else Yᵀ (k, n)."""
        Y = self.Y
        if self.loss.classification:
            labels = Y.argmax(dim=1)
            if bool((Y.gather(1, labels[:, None]) == 1).all() and (Y.sum(dim=1) == 1).all()):
                return labels
        return Y.T.contiguous()

    @cached_property
    def labels(self) -> Tensor:
        """argmax of each target row (n,): the class counted as right for accuracy."""
        return self.Y.argmax(dim=1)

    def target_columns(self, index: Tensor) -> Tensor:
        """The class-major targets of the samples ``index`` (labels (m,) or Yᵀ columns (k, m))."""
        T = self.targets
        return T.index_select(0 if T.ndim == 1 else 1, index)

    def class_major_chunks(self) -> Iterator[tuple[Tensor, Tensor]]:
        """Row blocks ``(X_c (m, d), T_c)`` with the targets as in :attr:`targets`."""
        T = self.targets
        for s in range(0, self.n, self.chunk_rows):
            e = s + self.chunk_rows
            yield self.X[s:e], (T[s:e] if T.ndim == 1 else T[:, s:e])

    # minibatches ----------------------------------------------------------------------
    def steps_per_epoch(self, batch_size: int) -> int:
        """Steps of one epoch: ⌈(rows of the largest rank) / B⌉ (ranks that run out send empty batches)."""
        sizes = self._replay_sizes() if self.simulate_ranks > 1 else self.rank_sizes
        return math.ceil(max(sizes) / batch_size)

    def _replay_sizes(self) -> list[int]:
        from .data.stream import rank_range
        P = self.simulate_ranks
        return [b - a for a, b in (rank_range(self.n, r, P) for r in range(P))]

    def batches(self, epoch: int, batch_size: int, seed: int) -> Iterator[tuple[Tensor, Tensor, Tensor | None]]:
        """This rank's minibatches ``(X_b (m, d), T_b, labels_b (m,) | None)`` of one epoch, in
        the class-major target layout of :attr:`targets`; exactly :meth:`steps_per_epoch` of
        them (empty ones, m = 0, once this rank's rows are used up)."""
        from .data.stream import rank_range
        B = int(batch_size)
        if self.simulate_ranks > 1:
            P = self.simulate_ranks
            parts = [self._rank_batches(epoch, B, seed, r, *rank_range(self.n, r, P)) for r in range(P)]
            merged = (_concat([b for b in group if b is not None])
                      for group in itertools.zip_longest(*parts))
        else:
            merged = self._rank_batches(epoch, B, seed, self.rank, 0, self.n)
        yield from itertools.islice(itertools.chain(merged, self._empty_batches()), self.steps_per_epoch(B))

    def _empty_batches(self):
        T = self.targets
        empty = (self.X[:0], T[:0] if T.ndim == 1 else T[:, :0],
                 self.labels[:0] if self.loss.classification else None)
        return itertools.repeat(empty)

    def _rank_batches(self, epoch, B, seed, rank, lo, hi):
        from .data.stream import epoch_generator
        perm = torch.randperm(hi - lo, generator=epoch_generator(seed, epoch, rank)).add_(lo).to(self.device)
        T = self.target_columns(perm)                        # labels (m,) or Yᵀ (k, m), this epoch's order
        T_b = T.split(B, dim=0 if T.ndim == 1 else 1)
        if not self.loss.classification:
            L_b = itertools.repeat(None)
        else:                                                # hard targets: the labels are T itself
            L_b = T_b if T.ndim == 1 else self.labels.index_select(0, perm).split(B)
        for idx, Tb, Lb in zip(perm.split(B), T_b, L_b):
            yield self.X.index_select(0, idx), Tb, Lb

    def penalty(self, params: Params) -> Tensor:
        return 0.5 * self.weight_decay * params.W.square().sum()

    # full-batch objective ----------------------------------------------------------
    # Computed in the class-major layout Zᵀ = Wᵀ Xᵀ + b (k, m) per chunk: the same sums, with
    # PyTorch's fast kernels for a small k (see losses); ∇_W F is accumulated as Gᵀ X (k, d).
    def value(self, params: Params) -> Tensor:
        """F(W, b), a 0-d tensor."""
        Wt, b = params.W.T.contiguous(), params.b[:, None]
        total = params.W.new_zeros(())
        for Xc, Tc in self.class_major_chunks():
            total += self.loss.value(torch.addmm(b, Wt, Xc.T), Tc, dim=0) * (Xc.shape[0] / self.n_total)
        self._reduce(total)
        return total + self.penalty(params)

    def value_and_accuracy(self, params: Params) -> tuple[Tensor, float]:
        """(F, fraction of samples whose largest logit is their label's), in one pass."""
        Wt, b = params.W.T.contiguous(), params.b[:, None]
        total = params.W.new_zeros(())
        hits = params.W.new_zeros(())
        for Xc, Tc in self.class_major_chunks():
            Zt = torch.addmm(b, Wt, Xc.T)                                   # (k, m)
            total += self.loss.value(Zt, Tc, dim=0) * (Xc.shape[0] / self.n_total)
            lab = (Tc if Tc.ndim == 1 else Tc.argmax(dim=0))[None, :]
            hits += (Zt.gather(0, lab) >= Zt.amax(dim=0, keepdim=True)).sum()
        self._reduce(total, hits)
        return total + self.penalty(params), float(hits) / self.n_total

    def value_and_grad(self, params: Params) -> tuple[Tensor, Tensor, Tensor]:
        """(F, ∇_W F (d, k), ∇_b F (k,))."""
        Wt, b = params.W.T.contiguous(), params.b[:, None]
        F = params.W.new_zeros(())
        gWt = torch.zeros_like(Wt)                            # (k, d)
        gb = torch.zeros_like(params.b)
        for Xc, Tc in self.class_major_chunks():
            w = Xc.shape[0] / self.n_total                    # chunk mean → global mean
            Lc, Gt = self.loss.value_and_grad(torch.addmm(b, Wt, Xc.T), Tc, dim=0)   # Gᵀ (k, m)
            F += Lc * w
            gWt.addmm_(Gt, Xc, alpha=w)                       # Gᵀ X
            gb.add_(Gt.sum(dim=1), alpha=w)
        self._reduce(F, gWt, gb)
        gW = gWt.T.contiguous()
        if self.weight_decay:
            gW.add_(params.W, alpha=self.weight_decay)
        return F + self.penalty(params), gW, gb

    def hessian(self, params: Params) -> Tensor:
        """∇²F as a ((d+1)k, (d+1)k) matrix in the layout of ``Params.flat``."""
        d, k = self.d, self.k
        H = params.W.new_zeros(d + 1, k, d + 1, k)
        squared = isinstance(self.loss, SquaredError)
        for Xc, Yc in self.chunks():
            w = Xc.shape[0] / self.n_total
            Xt = torch.cat([Xc, Xc.new_ones(Xc.shape[0], 1)], dim=1)      # (n_c, d+1)
            if squared:                                    # H_i = I/n: one Gram matrix
                gram = Xt.T @ Xt * (w / Xc.shape[0])
                for i in range(k):
                    H[:, i, :, i] += gram
                continue
            Hb = self.loss.hess_blocks(torch.addmm(params.b, Xc, params.W), Yc) * w  # (n_c, k, k)
            for i in range(k):
                for j in range(i, k):
                    block = Xt.T @ (Hb[:, i, j, None] * Xt)                   # (d+1, d+1)
                    H[:, i, :, j] += block
                    if j != i:
                        H[:, j, :, i] += block.T
        self._reduce(H)
        if self.weight_decay:
            idx = torch.arange(d, device=H.device)
            for i in range(k):
                H[idx, i, idx, i] += self.weight_decay
        return H.reshape((d + 1) * k, (d + 1) * k)

    def hvp(self, params: Params, VW: Tensor, Vb: Tensor) -> tuple[Tensor, Tensor]:
        """Hessian-vector product ∇²F · (V_W, V_b) without forming ∇²F (class-major per chunk)."""
        Wt, b = params.W.T.contiguous(), params.b[:, None]
        VWt, vb = VW.T.contiguous(), Vb[:, None]
        HWt = torch.zeros_like(Wt)
        Hb = torch.zeros_like(params.b)
        for Xc, Tc in self.class_major_chunks():
            w = Xc.shape[0] / self.n_total
            Zt = torch.addmm(b, Wt, Xc.T)                    # (k, m)
            ZVt = torch.addmm(vb, VWt, Xc.T)                 # directional change of Zᵀ (k, m)
            Mt = self.loss.hvp(Zt, Tc, ZVt, dim=0)           # (k, m)
            HWt.addmm_(Mt, Xc, alpha=w)
            Hb.add_(Mt.sum(dim=1), alpha=w)
        self._reduce(HWt, Hb)
        HW = HWt.T.contiguous()
        if self.weight_decay:
            HW.add_(VW, alpha=self.weight_decay)
        return HW, Hb


def _concat(batches):
    """One batch from the batches of several ranks (for ``simulate_ranks``)."""
    Xs, Ts, Ls = zip(*batches)
    T = torch.cat(Ts, dim=0 if Ts[0].ndim == 1 else 1)
    return torch.cat(Xs), T, None if Ls[0] is None else torch.cat(Ls)


class StreamProblem(Problem):
    """A :class:`Problem` whose rows stay on disk (:class:`~linearnets.data.stream.Shards`).

    ``encode`` maps a block of raw targets (m,) to class indices (int64) for classification,
    or to values (float) for regression (one target column, k = 1). ``label_smoothing``
    turns class indices into smoothed probability rows per batch. In a data-parallel run
    rank r streams only rows ``rank_range(n, r, P)``. Full-batch work reads the rows in file
    order in chunks of ``chunk_rows``; minibatches come from
    :func:`~linearnets.data.stream.shuffled_batches` (random block order, then windows
    of ``buffer_rows`` rows each emitted in random order; file order with ``shuffle=False``). Memory does not depend on
    the number of rows.
    """

    streamed = True

    def __init__(self, shards, encode: Callable, k: int, loss: Loss, weight_decay: float = 0.0, *,
                 dtype: torch.dtype = torch.float32, device=torch.device("cpu"), comm=None,
                 simulate_ranks: int = 1, chunk_rows: int | None = None, buffer_rows: int = 16384,
                 block_rows: int = 4096, label_smoothing: float = 0.0, shuffle: bool = True):
        from .data.stream import rank_range

        self.shards, self.encode, self.loss = shards, encode, loss
        self.weight_decay = float(weight_decay)
        self._k, self._dtype, self._device = int(k), dtype, torch.device(device)
        self.label_smoothing = float(label_smoothing)
        self.buffer_rows, self.block_rows, self.shuffle = int(buffer_rows), int(block_rows), bool(shuffle)
        if chunk_rows is None:
            chunk_rows = max(256, self.CHUNK_BYTES // max(1, shards.d * torch.finfo(dtype).bits // 8))
        self.chunk_rows = int(chunk_rows)
        rank, world = (comm.rank, comm.world_size) if comm is not None else (0, 1)
        self.lo, self.hi = rank_range(shards.n, rank, world)
        self._set_ranks(comm, simulate_ranks)

    n = property(lambda self: self.hi - self.lo)
    d = property(lambda self: self.shards.d)
    k = property(lambda self: self._k)
    dtype = property(lambda self: self._dtype)
    device = property(lambda self: self._device)

    def _class_major(self, t: Tensor) -> Tensor:
        """Encoded targets (m,) → labels (m,), or (k, m) rows of Yᵀ."""
        if not self.loss.classification:
            return t.to(self._dtype).view(1, -1)
        if self.label_smoothing:
            return smooth_labels(one_hot(t, self._k, self._dtype), self.label_smoothing).T.contiguous()
        return t

    def chunks(self):
        for Xc, Tc in self.class_major_chunks():                # targets back to rows (m, k)
            yield Xc, (one_hot(Tc, self._k, self._dtype) if Tc.ndim == 1 else Tc.T.contiguous())

    def class_major_chunks(self):
        for X, y in self.shards.blocks(self.lo, self.hi, self.chunk_rows):
            Xc = torch.from_numpy(X).to(device=self._device, dtype=self._dtype).contiguous()   # one copy
            yield Xc, self._class_major(self.encode(y)).to(self._device)

    @property
    def targets(self):
        raise AttributeError("a streamed problem has no in-memory targets; use class_major_chunks()")

    @property
    def labels(self):
        raise AttributeError("a streamed problem has no in-memory labels; use class_major_chunks()")

    def _rank_batches(self, epoch, B, seed, rank, lo, hi):
        from .data.stream import epoch_generator, shuffled_batches
        gen = epoch_generator(seed, epoch, rank) if self.shuffle else None
        for Xb, tb in shuffled_batches(self.shards, self.lo + lo, self.lo + hi, B, generator=gen,
                                       encode=self.encode, dtype=self._dtype, device=self._device,
                                       buffer_rows=self.buffer_rows, block_rows=self.block_rows,
                                       views=True):
            yield Xb, self._class_major(tb), (tb if self.loss.classification else None)

    def _empty_batches(self):
        X = torch.empty(0, self.d, dtype=self._dtype, device=self._device)
        lab = torch.empty(0, dtype=torch.int64, device=self._device)
        T = (lab if self.loss.classification and not self.label_smoothing
             else torch.empty(self._k, 0, dtype=self._dtype, device=self._device))
        return itertools.repeat((X, T, lab if self.loss.classification else None))
