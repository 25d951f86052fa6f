r"""Compiled loops for sparse rows on the CPU (numba): a plain SGD step of softmax cross-entropy,
and the gather of an epoch's rows.

The step :class:`~linearnets.solvers.sgd.SparseSteps` takes with PyTorch ops (gather the rows of
W, ``embedding_bag``, log-softmax, a scatter-add) costs ~30 small ops — ~200 µs at 64 rows of 50
non-zeros, of which the arithmetic (m·nnz_row·k multiply-adds) is a few µs. Here the same maths
runs as two loops over the entries, for hard labels (the usual case):

    forward:  Z_i = b + Σ_e x_e W_{j_e}          ℓ_i = logsumexp(Z_i) − Z_{i, y_i}
              G_i = w̃_i (softmax(Z_i) − onehot(y_i)) / m
              returns (Σ_i w̃_i ℓ_i, Σ_i w_i [argmax Z_i = y_i], a checksum of the rows loaded)
    update:   undo_e = W_{j_e} (every entry, before any moves), undo_b = b
              W_{j_e} −= η x_e G_{i_e},   b −= η Σ_i G_i

(w: the block's weights, w̃ = w m / Σw; both 1 without weights; the hits are what
:func:`linearnets.metrics.hits` counts.) Shapes: crow (m+1,), col, val (nnz,), W (d, k), b (k,),
labels (m,), Z, G (m, k), undo (nnz, k). ``undo`` holds the rows as they were
before the step, for the divergence guard's rollback (the same layout the PyTorch path keeps).

``gather_rows`` is :meth:`CSR.index_select <linearnets.data.sparse.CSR.index_select>`'s copy of
the entries of the rows picked, a slice per row (~20% faster than the vectorised PyTorch gather,
which builds an index per entry; 65 536 text-like rows in ~23 ms), columns out as int64.

numba is imported on first use (a sparse fit); without it, or for anything else (soft targets,
other losses, weight decay, momentum, a GPU), the PyTorch ops run. The tests check both against
the dense update.
"""

from __future__ import annotations

import math
import os

import torch

__all__ = ["kernels", "step_kernels", "eligible", "gather_rows"]

_COMPILED: dict = {}


def _forward(crow, col, val, W, b, labels, wrel, wraw, m_div, Z, G):
    m = crow.shape[0] - 1
    k = W.shape[1]
    weighted = wrel.shape[0] > 0
    hits = 0.0
    touched = 0.0
    for e in range(col.shape[0]):                  # load every row first: independent loads overlap
        touched += W[col[e], 0] + W[col[e], k - 1]  # (the rows lie at random in W: each is a cache miss)
    total = 0.0
    for i in range(m):
        for c in range(k):
            Z[i, c] = b[c]
        for e in range(crow[i], crow[i + 1]):
            j = col[e]
            v = val[e]
            for c in range(k):
                Z[i, c] += v * W[j, c]
        top = Z[i, 0]
        best = 0
        for c in range(1, k):
            if Z[i, c] > top:                      # the first of tied largest logits, as argmax
                top = Z[i, c]
                best = c
        s = 0.0
        for c in range(k):
            s += math.exp(Z[i, c] - top)
        lse = top + math.log(s)
        y = labels[i]
        if best == y:
            hits += wraw[i] if weighted else 1.0
        wi = wrel[i] if weighted else 1.0
        total += wi * (lse - Z[i, y])
        scale = wi / m_div
        for c in range(k):
            G[i, c] = math.exp(Z[i, c] - lse) * scale
        G[i, y] -= scale
    return total, hits, touched


def _update(crow, col, val, W, b, G, lr, intercept, undo, undo_b):
    m = crow.shape[0] - 1
    k = W.shape[1]
    for c in range(k):
        undo_b[c] = b[c]
    for e in range(col.shape[0]):                  # every touched row as it was, before any moves
        j = col[e]
        for c in range(k):
            undo[e, c] = W[j, c]
    for i in range(m):
        for e in range(crow[i], crow[i + 1]):
            j = col[e]
            s = -lr * val[e]
            for c in range(k):
                W[j, c] += s * G[i, c]
    if intercept:
        for c in range(k):
            acc = 0.0
            for i in range(m):
                acc += G[i, c]
            b[c] -= lr * acc


def _gather(crow, col, val, index, out_crow, out_col, out_val):
    pos = 0
    out_crow[0] = 0
    for i in range(index.shape[0]):
        r = index[i]
        a, n = crow[r], crow[r + 1] - crow[r]
        out_col[pos:pos + n] = col[a:a + n]
        out_val[pos:pos + n] = val[a:a + n]
        pos += n
        out_crow[i + 1] = pos


def gather_rows(crow: torch.Tensor, col: torch.Tensor, val: torch.Tensor, index: torch.Tensor):
    """(crow, col int64, val) of the rows ``index`` (int64, CPU) of a CSR, or None without numba."""
    compiled = kernels()
    if compiled is None or crow.device.type != "cpu" or val.dtype not in (torch.float32, torch.float64):
        return None
    starts = crow[index]
    total = int((crow[index + 1] - starts).sum()) if index.numel() else 0
    out_crow = torch.empty(index.shape[0] + 1, dtype=torch.int64)
    out_col = torch.empty(total, dtype=torch.int64)
    out_val = torch.empty(total, dtype=val.dtype)
    compiled[2](crow.numpy(), col.numpy(), val.numpy(), index.numpy(), out_crow.numpy(), out_col.numpy(),
                out_val.numpy())
    return out_crow, out_col, out_val


def kernels():
    """(forward, update, gather) compiled, or None where numba is missing or the environment sets
    ``LINEARNETS_NUMBA=0`` (the PyTorch ops run instead)."""
    if os.environ.get("LINEARNETS_NUMBA") == "0":
        return None
    if "kernels" not in _COMPILED:
        try:
            import numba  # optional speed-up for sparse SGD, imported by the first sparse fit only
        except ImportError:
            _COMPILED["kernels"] = None
        else:
            try:                 # compiled once per install, cached beside the package
                built = tuple(numba.njit(cache=True, nogil=True)(f) for f in (_forward, _update, _gather))
            except Exception:    # noqa: BLE001 — no writable cache (a read-only install): compile per process
                built = tuple(numba.njit(nogil=True)(f) for f in (_forward, _update, _gather))
            _COMPILED["kernels"] = built
    return _COMPILED["kernels"]


def step_kernels(W: torch.Tensor):
    """(forward, update) for parameters like ``W`` — float32/float64 on the CPU — or None."""
    if W.device.type != "cpu" or W.dtype not in (torch.float32, torch.float64):
        return None
    compiled = kernels()
    return None if compiled is None else compiled[:2]


def eligible(loss, block) -> bool:
    """Whether the compiled step applies to a block: cross-entropy (or KL, equal on hard labels)
    with integer labels."""
    return (getattr(loss, "name", None) in ("cross_entropy", "kl") and block.T.ndim == 1
            and not block.T.is_floating_point())
