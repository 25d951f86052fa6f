r"""Sparse rows: :class:`CSR`, and the products every solver takes through it.

A sparse block holds ``X`` (m, d) in compressed sparse row form on torch tensors::

    crow (m+1,) int64     row i's entries are crow[i]:crow[i+1]
    col  (nnz,) int32/64  their columns
    val  (nnz,)           their values, in the training dtype

Nothing here densifies X. The two products a linear model needs cost O(nnz · k)::

    matmul(X, W)  = X W      (m, k)   Z_i = Σ_j x_ij W_j        (a gather, a scaled segment sum)
    gt_x(Gt, X)   = Gᵀ X     (k, d)   (Xᵀ G)_j = Σ_i x_ij G_i   (a scatter-add over the entries)

and both accept a dense ``X`` too (then they are the BLAS products), so the objective, the
full-batch solvers, the metrics and the SGD step have one code path for dense and sparse blocks.
We keep our own small CSR rather than ``torch.sparse_csr_tensor``: that layout lacks row
selection (``index_select``) on CPU and warns that it is in beta on every construction. ``X W`` is
PyTorch's ``embedding_bag`` (rows of W gathered and summed with the entries as weights): 1.5–2×
faster than the sparse CSR × dense kernel on the CPU at every block size we measured (32 to
100 000 rows, 50 entries a row) and nothing to build per block.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor

from .. import kernels
from ..errors import DataError

__all__ = ["CSR", "is_sparse", "matmul", "gt_x", "xt_g", "row_sq_norms", "column_moments", "to_scipy_csr", "gram",
           "dense_pieces"]


FREE = 1 << 62                   # an unused entry of CSR.compact's scratch array


class CSR:
    """Rows of a sparse (m, d) matrix. ``shape`` is a tuple, ``X.shape[0]`` the rows as for a tensor."""

    __slots__ = ("crow", "col", "val", "shape", "_rows")

    def __init__(self, crow: Tensor, col: Tensor, val: Tensor, shape: tuple[int, int]):
        self.crow, self.col, self.val, self.shape = crow, col, val, (int(shape[0]), int(shape[1]))
        self._rows = None

    # --- construction -----------------------------------------------------------------
    @classmethod
    def from_scipy(cls, X, dtype: torch.dtype, device=None) -> "CSR":
        """Any scipy.sparse matrix/array → CSR in ``dtype`` (no copy of the indices when they
        are already CSR int32/int64 on the CPU; duplicates summed, columns sorted). The structure
        is checked in full first — row pointers, and every column index inside 0 … d−1 (scipy
        does not check them when a matrix is built from its arrays, and the compiled loops of
        :mod:`linearnets.kernels` index W with them)."""
        X = X.tocsr()
        try:
            X.check_format(full_check=True)
        except ValueError as e:
            raise DataError(f"malformed sparse matrix {X.shape}: {e}") from None
        if not X.has_canonical_format:
            X = X.copy()
            X.sum_duplicates()
        crow = torch.from_numpy(X.indptr.astype(np.int64, copy=False))
        col = torch.from_numpy(np.ascontiguousarray(X.indices))
        val = torch.from_numpy(np.ascontiguousarray(X.data)).to(dtype)
        return cls(crow, col, val, X.shape).to(device=device)

    def to_scipy(self) -> sp.csr_matrix:
        return sp.csr_matrix((self.val.cpu().numpy(), self.col.cpu().numpy(), self.crow.cpu().numpy()),
                             shape=self.shape)

    def to(self, dtype: torch.dtype | None = None, device=None) -> "CSR":
        device = torch.device(device) if device is not None else self.val.device
        dtype = dtype or self.val.dtype
        if device == self.val.device and dtype == self.val.dtype:
            return self
        return CSR(self.crow.to(device), self.col.to(device), self.val.to(device=device, dtype=dtype), self.shape)

    def double(self) -> "CSR":
        return self.to(torch.float64)

    def to_dense(self) -> Tensor:
        out = self.val.new_zeros(self.shape)
        out.index_put_((self.row_ids(), self.col.long()), self.val, accumulate=True)
        return out

    # --- what code written for a tensor asks of X ----------------------------------------
    dtype = property(lambda self: self.val.dtype)
    device = property(lambda self: self.val.device)
    ndim = 2
    nnz = property(lambda self: int(self.val.shape[0]))

    def numel(self) -> int:
        return self.shape[0] * self.shape[1]

    def row_ids(self) -> Tensor:
        """The row of every stored entry (nnz,) int64 (computed once)."""
        if self._rows is None:
            m = self.shape[0]
            self._rows = torch.repeat_interleave(torch.arange(m, device=self.crow.device), self.crow.diff(),
                                                 output_size=self.nnz)
        return self._rows

    def __getitem__(self, rows: slice) -> "CSR":
        """Rows a:b (a view of the entries)."""
        a, b, step = rows.indices(self.shape[0])
        if step != 1:
            raise IndexError("CSR rows: only contiguous slices")
        b = max(a, b)
        lo, hi = int(self.crow[a]), int(self.crow[b])
        return CSR(self.crow[a:b + 1] - lo, self.col[lo:hi], self.val[lo:hi], (b - a, self.shape[1]))

    def index_select(self, dim: int, index: Tensor) -> "CSR":
        """The rows ``index`` (in that order): one compiled loop over their entries (int64 columns;
        :func:`linearnets.kernels.gather_rows`), else one vectorised PyTorch gather."""
        if dim != 0:
            raise IndexError("CSR: rows only")
        index = index.to(self.crow.device, torch.int64)
        gathered = kernels.gather_rows(self.crow, self.col, self.val, index)
        if gathered is not None:
            return CSR(*gathered, (index.shape[0], self.shape[1]))
        start = self.crow[index]
        lengths = self.crow[index + 1] - start
        crow = torch.zeros(index.shape[0] + 1, dtype=torch.int64, device=self.crow.device)
        torch.cumsum(lengths, 0, out=crow[1:])
        total = int(crow[-1])
        pos = (torch.arange(total, device=self.crow.device)
               + torch.repeat_interleave(start - crow[:-1], lengths, output_size=total))
        return CSR(crow, self.col[pos], self.val[pos], (index.shape[0], self.shape[1]))

    @staticmethod
    def cat(parts: list["CSR"]) -> "CSR":
        """Rows of ``parts`` stacked."""
        offsets = [0]
        for p in parts:
            offsets.append(offsets[-1] + p.nnz)
        crow = torch.cat([parts[0].crow[:1]] + [p.crow[1:] + o for p, o in zip(parts, offsets)])
        return CSR(crow, torch.cat([p.col for p in parts]), torch.cat([p.val for p in parts]),
                   (sum(p.shape[0] for p in parts), parts[0].shape[1]))

    def scale_columns(self, scale: Tensor) -> "CSR":
        """X diag(1/scale): a new CSR (the entries divided by their column's scale)."""
        return CSR(self.crow, self.col, self.val / scale.to(self.val)[self.col.long()], self.shape)

    def compact(self, slot: Tensor) -> tuple[Tensor, "CSR"]:
        """(cols (r,) int64: the distinct columns used, in order of first use; the block over those r
        columns only) — in O(nnz), no sort: ``slot`` is a (d,) int64 scratch array holding
        :data:`FREE` everywhere, as it is left on return."""
        col = self.col.long()
        position = torch.arange(col.shape[0], device=col.device)
        slot.scatter_reduce_(0, col, position, "amin")                 # each column's first entry
        first = slot.index_select(0, col)
        is_first = first == position
        cols = col[is_first]
        ids = torch.cumsum(is_first, 0) - 1                            # compact id of each first entry
        inverse = ids.index_select(0, first)
        slot.index_fill_(0, cols, FREE)                                # clean for the next block
        X = CSR(self.crow, inverse.to(self.col.dtype), self.val, (self.shape[0], int(cols.shape[0])))
        X._rows = self._rows
        return cols, X

    def used_columns(self) -> tuple[Tensor, "CSR"]:
        """(cols (r,) int64: the distinct columns used, sorted; the block over those r columns only) —
        by a sort, for a one-off (minibatches use :meth:`compact`)."""
        cols, inverse = torch.unique(self.col, return_inverse=True)
        return cols.long(), CSR(self.crow, inverse.to(self.col.dtype), self.val, (self.shape[0], int(cols.shape[0])))

    def byte_size(self) -> int:
        return sum(t.element_size() * t.numel() for t in (self.crow, self.col, self.val))

    def __repr__(self) -> str:
        return f"CSR(shape={self.shape}, nnz={self.nnz}, dtype={self.dtype})"


def is_sparse(X) -> bool:
    return isinstance(X, CSR)


def matmul(X, W: Tensor) -> Tensor:
    """X W (m, k) for ``W`` (d, k): BLAS for a dense X; for a CSR, Z_i = Σ_j x_ij W_j in O(nnz·k)
    (``embedding_bag``: the rows W_j of row i's entries, summed with weights x_ij)."""
    if not isinstance(X, CSR):
        return X @ W
    if not X.nnz or not X.shape[0]:
        return W.new_zeros(X.shape[0], W.shape[1])
    col = X.col if X.nnz < 2 ** 31 else X.col.long()          # offsets share the indices' dtype
    return F.embedding_bag(col, W.contiguous(), X.crow[:-1].to(col.dtype), mode="sum",
                           per_sample_weights=X.val.to(W.dtype))


def gt_x(Gt: Tensor, X) -> Tensor:
    """Gᵀ X (k, d) for ``Gt`` = Gᵀ (k, m): BLAS for a dense X; for a CSR a scatter-add of the
    nnz entries' x_ij G_i into their columns, O(nnz·k) (and a (k, d) result)."""
    if not isinstance(X, CSR):
        return Gt @ X
    return xt_g(Gt.T, X).T


def xt_g(G: Tensor, X: CSR) -> Tensor:
    """Xᵀ G (d, k) for ``G`` (m, k) and a CSR X: (Xᵀ G)_j = Σ_i x_ij G_i."""
    terms = G.contiguous().index_select(0, X.row_ids()) * X.val[:, None]     # (a transposed G gathers ~7× slower)
    return G.new_zeros(X.shape[1], G.shape[1]).index_add_(0, X.col.long(), terms)


def row_sq_norms(X) -> Tensor:
    """‖x_i‖² per row (m,), float64."""
    if not isinstance(X, CSR):
        return X.double().square().sum(dim=1)
    return torch.zeros(X.shape[0], dtype=torch.float64, device=X.device).index_add_(
        0, X.row_ids(), X.val.double().square())


def column_moments(X, w: Tensor | None = None) -> tuple[Tensor, Tensor, float]:
    """(Σ w x_j (d,), Σ w x_j² (d,), Σ w), float64 — the sums behind a column's mean and variance
    (the zeros of a sparse X count, as they are values)."""
    if not isinstance(X, CSR):
        Xd = X.double()
        if w is None:
            return Xd.sum(dim=0), Xd.square().sum(dim=0), float(X.shape[0])
        wd = w.double()
        return wd @ Xd, wd @ Xd.square(), float(wd.sum())
    val = X.val.double()
    if w is not None:
        wv = w.double()[X.row_ids()]
    col = X.col.long()
    s1 = torch.zeros(X.shape[1], dtype=torch.float64, device=X.device).index_add_(0, col, val if w is None else val * wv)
    s2 = torch.zeros(X.shape[1], dtype=torch.float64, device=X.device).index_add_(
        0, col, val.square() if w is None else val.square() * wv)
    return s1, s2, float(X.shape[0]) if w is None else float(w.double().sum())


def to_scipy_csr(X):
    """A torch sparse tensor (CSR, CSC, COO) → scipy CSR (half-precision values widened to float32);
    anything else unchanged."""
    if isinstance(X, torch.Tensor) and X.layout in (torch.sparse_bsr, torch.sparse_bsc):
        raise DataError(f"torch sparse layout {X.layout} is not taken; convert it with .to_sparse_csr() first")
    if isinstance(X, torch.Tensor) and X.layout in (torch.sparse_csr, torch.sparse_csc, torch.sparse_coo):
        X = X.detach().cpu()
        if X.dtype in (torch.float16, torch.bfloat16):
            X = X.to(torch.float32)
        if X.layout == torch.sparse_coo:
            X = X.coalesce()
            i = X.indices().numpy()
            return sp.csr_matrix((X.values().numpy(), (i[0], i[1])), shape=tuple(X.shape))
        if X.layout == torch.sparse_csc:
            return sp.csc_matrix((X.values().numpy(), X.row_indices().numpy(), X.ccol_indices().numpy()),
                                 shape=tuple(X.shape)).tocsr()
        return sp.csr_matrix((X.values().numpy(), X.col_indices().numpy(), X.crow_indices().numpy()),
                             shape=tuple(X.shape))
    return X


def gram(X: CSR, w: Tensor | None = None) -> Tensor:
    """Xᵀ diag(w) X (d, d), float64 dense — formed sparsely (scipy's sparse product, Σ_i nnz_i²
    work), on X's device."""
    Xs = X.double().to_scipy()
    XtW = Xs.T if w is None else Xs.T.multiply(w.double().cpu().numpy()[None, :]).tocsr()
    G = (XtW @ Xs).toarray()
    return torch.from_numpy(np.ascontiguousarray(G)).to(X.device)


def dense_pieces(X, rows_bytes: int = 4 << 20):
    """(start, dense rows) of X in pieces of ~4 MiB (a dense X: itself, once)."""
    if not isinstance(X, CSR):
        yield 0, X
        return
    rows = max(1, rows_bytes // max(1, 8 * X.shape[1]))
    for s in range(0, X.shape[0], rows):
        yield s, X[s:s + rows].to_dense()
