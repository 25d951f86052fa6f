"""Synthetic data: the book's linear-regression problem and learnable classification sets."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .dataset import Dataset

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def synthetic_regression(w=(2.0, -3.4), b: float = 4.2, n: int = 1000, noise: float = 0.01,
                         seed: int = 0, dtype=np.float32) -> Dataset:
    r"""The book's data: ``X ~ N(0, I)`` (n, d), ``y = X w + b + ε``, ``ε ~ N(0, noise²)``.

    Defaults are *Dive into Deep Learning*'s: w = [2, -3.4], b = 4.2, σ = 0.01, n = 1000.
    """
    w = np.asarray(w, dtype=np.float64)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, w.shape[0]))
    y = X @ w + b + noise * rng.standard_normal(n)
    return Dataset(X.astype(dtype), y.astype(dtype), name="synthetic-regression", task="regression",
                   feature_names=tuple(f"x{i}" for i in range(w.shape[0])), target_name="y")


def smooth_prototypes(k: int, side: int, rng) -> np.ndarray:
    """k smooth 'images' (k, side*side) in [0, 1]: sums of Gaussian bumps, one shape per class."""
    yy, xx = np.mgrid[0:side, 0:side] / (side - 1)
    protos = np.zeros((k, side, side))
    for c in range(k):
        for _ in range(4):
            cy, cx = rng.uniform(0.2, 0.8, size=2)
            sy, sx = rng.uniform(0.08, 0.3, size=2)
            protos[c] += rng.uniform(0.5, 1.0) * np.exp(-((yy - cy) ** 2 / (2 * sy ** 2) + (xx - cx) ** 2 / (2 * sx ** 2)))
        protos[c] /= protos[c].max()
    return protos.reshape(k, side * side)


def synthetic_classification(n: int = 1000, d: int = 20, k: int = 3, *, kind: str = "gaussian",
                             noise: float = 1.0, seed: int = 0, dtype=np.float32) -> Dataset:
    """A learnable classification set.

    kind="gaussian": class means on a sphere of radius 2 in R^d, isotropic noise ``noise``.
    kind="images":   pixel-like images (d must be a square, values in [0, 1] in steps of 1/255):
                     each class a smooth prototype, each sample ``clip(s·P_y + 0.4·P_other + noise·ε)``
                     — linearly separable only in part, like Fashion-MNIST.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    if kind == "gaussian":
        means = rng.standard_normal((k, d))
        means *= 2.0 / np.linalg.norm(means, axis=1, keepdims=True)
        X = means[y] + noise * rng.standard_normal((n, d))
        return Dataset(X.astype(dtype), y.astype(np.int64), name="synthetic-classification",
                       task="classification", class_names=tuple(str(c) for c in range(k)))
    if kind != "images":
        raise ValueError(f"unknown kind {kind!r}; use 'gaussian' or 'images'")
    side = int(round(d ** 0.5))
    if side * side != d:
        raise ValueError(f"kind='images' needs a square number of features, got d={d}")
    P = smooth_prototypes(k, side, rng).astype(np.float32)            # (k, d)
    other = (y + rng.integers(1, k, size=n)) % k
    scale = rng.uniform(0.5, 1.1, size=(n, 1)).astype(np.float32)
    X = np.empty((n, d), dtype=np.float32)
    for s in range(0, n, 8192):                                        # bounded temporaries
        sl = slice(s, s + 8192)
        eps = rng.standard_normal((X[sl].shape[0], d), dtype=np.float32)
        X[sl] = np.clip(scale[sl] * P[y[sl]] + 0.4 * P[other[sl]] + 0.25 * noise * eps, 0.0, 1.0)
    X = np.round(X * 255.0) / 255.0
    names = FASHION_CLASSES if k == 10 else tuple(str(c) for c in range(k))
    return Dataset(X.astype(dtype), y.astype(np.int64), name="synthetic-images", task="classification",
                   class_names=names, image_shape=(side, side))


def fashion_mnist_like(n: int = 60000, seed: int = 0) -> Dataset:
    """Synthetic data of Fashion-MNIST's shape: n × 784 pixel-like features → 10 classes."""
    ds = synthetic_classification(n=n, d=784, k=10, kind="images", seed=seed)
    return Dataset(ds.X, ds.y, name="synthetic-fashion", task="classification",
                   class_names=ds.class_names, image_shape=(28, 28))


KNUTH = 2654435761          # a prime: the multiplicative hash rank → column is a bijection of [0, d)


def text_like(n: int, d: int = 2 ** 20, nnz: int = 50, k: int = 20, *, zipf: float = 1.1,
              informative: int = 1024, margin: float = 16.0, seed: int = 0,
              chunk_rows: int = 65536) -> tuple[sp.csr_matrix, np.ndarray]:
    r"""Synthetic text-like sparse classification data: ``(X, y)``, X an (n, d) float32 CSR matrix.

    * **Features**: a vocabulary of d "words" with Zipf frequencies, p(rank r) ∝ (r + 1)^−zipf;
      rank r is hashed to column ``(r · 2654435761) mod d`` (a bijection: no collisions, but the
      frequent words are scattered over the columns as a hashing trick would scatter them).
    * **Rows**: a Poisson number of word draws, its mean set so that a row holds ``nnz`` distinct
      words on average (frequent words repeat); values ``log(1 + count)`` (sublinear tf), each row
      L2-normalised. Column indices sorted within a row.
    * **Labels**: a planted linear model. The ``informative`` most frequent words carry random
      class weights ``W* ~ N(0, 1)`` (informative, k), the other words none;
      ``y = argmax_c(margin · x·W*_c + b*_c + g_c)`` with Gumbel noise g, i.e. y is drawn from
      softmax(margin · x W* + b*); the intercepts b* balance the classes (the most frequent words
      are in almost every row and would otherwise favour a few classes). With the defaults the
      Bayes accuracy is ≈ 0.9 and a linear model learned from 10⁶ rows gets ≈ 0.8.

    Built chunk by chunk in vectorised NumPy (a million rows in about ten seconds on one core;
    peak memory ~ the result plus one chunk's draws). Deterministic given ``seed``.
    """
    if not (0 < d <= 2 ** 32) or d == KNUTH:
        raise ValueError(f"text_like needs 1 ≤ d ≤ 2^32 (and d ≠ {KNUTH}, the hash's multiplier), got d={d}")
    if n < 1 or nnz < 1 or k < 2:
        raise ValueError(f"text_like needs n ≥ 1, nnz ≥ 1 and k ≥ 2; got n={n}, nnz={nnz}, k={k}")
    rng = np.random.default_rng(seed)
    p = np.arange(1, d + 1, dtype=np.float64) ** -zipf                      # (d,) by rank
    p /= p.sum()
    cdf = np.cumsum(p)
    cdf[-1] = 1.0
    # mean draws per row T with E[distinct words] = Σ_r (1 − exp(−T p_r)) = nnz (Poissonised)
    lo, hi = float(nnz), float(nnz)
    while np.sum(-np.expm1(-hi * p)) < min(nnz, 0.99 * d):
        hi *= 2.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if np.sum(-np.expm1(-mid * p)) < nnz else (lo, mid)
    draws_per_row = 0.5 * (lo + hi)
    m_inf = min(informative, d)
    W_star = rng.standard_normal((m_inf, k), dtype=np.float32)              # (informative, k)
    inverse = pow(KNUTH, -1, d) if d > 1 else 0                            # column → rank
    data, indices, indptr, labels = [], [], [np.zeros(1, np.int64)], []
    offset, bias = 0, None
    for start in range(0, n, chunk_rows):
        m = min(chunk_rows, n - start)
        t = np.maximum(rng.poisson(draws_per_row, size=m), 1)              # draws per row (m,)
        rank = np.searchsorted(cdf, rng.random(int(t.sum())))              # (draws,)
        col = (rank.astype(np.uint64) * np.uint64(KNUTH)) % np.uint64(d)
        key = np.repeat(np.arange(m, dtype=np.uint64), t) * np.uint64(d) + col
        key, count = np.unique(key, return_counts=True)                   # sorted by row, then column
        row = (key // np.uint64(d)).astype(np.int64)
        col = (key - row.astype(np.uint64) * np.uint64(d)).astype(np.int64)
        value = np.log1p(count).astype(np.float32)
        norm = np.sqrt(np.bincount(row, weights=np.square(value, dtype=np.float64), minlength=m))
        value /= norm[row].astype(np.float32)
        per_row = np.bincount(row, minlength=m)
        # the planted model sees the informative words only (their ranks < informative)
        rank_of = ((col.astype(np.uint64) * np.uint64(inverse)) % np.uint64(d)).astype(np.int64)
        keep = rank_of < m_inf
        Xi = sp.csr_matrix((value[keep], (row[keep], rank_of[keep])), shape=(m, m_inf))
        S = margin * (Xi @ W_star)                                         # (m, k) planted scores
        if bias is None:                     # intercepts that balance the classes (set on the first chunk)
            bias = np.zeros(k)
            for _ in range(100):
                P = np.exp(S + bias - (S + bias).max(axis=1, keepdims=True))
                bias -= np.log(k * (P / P.sum(axis=1, keepdims=True)).mean(axis=0))
            bias -= bias.mean()
        Z = S + bias.astype(np.float32) + rng.gumbel(size=(m, k)).astype(np.float32)
        labels.append(np.argmax(Z, axis=1))
        data.append(value)
        indices.append(col.astype(np.int32 if d <= 2 ** 31 else np.int64))
        indptr.append(offset + np.cumsum(per_row))
        offset += len(value)
    X = sp.csr_matrix((np.concatenate(data), np.concatenate(indices), np.concatenate(indptr)), shape=(n, d))
    X.has_sorted_indices = True
    return X, np.concatenate(labels).astype(np.int64)


def handwritten_28x28(n: int = 5000, seed: int = 0) -> Dataset:
    """Real handwritten digits at MNIST's shape: scikit-learn's 1 797 8×8 digits, each drawn
    ``n / 1797`` times upsampled to 24×24 (bilinear), placed at a random offset of ±2 pixels in a
    28×28 frame, with a little pixel noise; uint8-valued pixels in [0, 1], labels 0–9. A dataset of
    another size and source than digits' 8×8 — for MNIST-format files (:func:`~linearnets.data.idx.write_idx`)."""
    from sklearn.datasets import load_digits  # scikit-learn is heavy to import; only this dataset needs it

    digits = load_digits()
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(digits.target), size=n)
    src = digits.images / 16.0                                                    # (1797, 8, 8)
    grid = (np.arange(24) + 0.5) / 3.0 - 0.5                                      # 24 points on 8 pixels
    i0 = np.clip(np.floor(grid).astype(int), 0, 7)
    i1 = np.clip(i0 + 1, 0, 7)
    f = np.clip(grid - np.floor(grid), 0.0, 1.0)
    rows = src[:, i0, :] * (1 - f)[None, :, None] + src[:, i1, :] * f[None, :, None]
    big = rows[:, :, i0] * (1 - f)[None, None, :] + rows[:, :, i1] * f[None, None, :]   # (1797, 24, 24)
    images = np.zeros((n, 28, 28))
    dy, dx = rng.integers(0, 5, size=(2, n))
    for i in range(n):
        images[i, dy[i]:dy[i] + 24, dx[i]:dx[i] + 24] = big[pick[i]]
    images = np.clip(images + 0.05 * rng.standard_normal(images.shape), 0.0, 1.0)
    X = (np.round(images * 255.0) / 255.0).reshape(n, 784).astype(np.float32)
    return Dataset(X, digits.target[pick].astype(np.int64), name="handwritten-28x28", task="classification",
                   class_names=tuple(str(c) for c in range(10)), image_shape=(28, 28))
