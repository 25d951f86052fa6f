r"""Losses of a linear layer's outputs, each with its value, gradient and curvature.

Conventions, written once for every loss here:

* ``Z`` (n, k) are the outputs (logits for classification), ``Y`` (n, k) the targets:
  real values for regression, rows of probabilities for classification (one-hot rows
  for hard labels, any distribution for soft targets).
* ``value`` and ``value_and_grad`` also take ``dim``, the class dimension: ``dim=0`` is
  the class-major layout ``Z`` (k, n), which SGD uses because PyTorch's softmax over a
  contiguous leading dimension of 10 is ~10× faster than over a trailing one.
* Classification losses also take integer labels ``y`` (n,) for ``Y`` — the same as
  one-hot rows, without materialising them (SGD uses this for hard labels).
* **One reduction: the mean over samples.** ``L = (1/n) Σ_i ℓ(Z_i, Y_i)``. With sample weights
  ``w_i ≥ 0`` it is the weighted mean ``L = Σ_i w_i ℓ(Z_i, Y_i) / Σ_i w_i`` — applied in one place,
  :class:`linearnets.objective.Objective`, from :meth:`Loss.per_sample` and by scaling ``G``'s
  rows (the per-sample gradients and Hessians scale with ``w_i``): integer weights equal repeated
  rows, and multiplying every weight by a constant changes nothing.
* ``grad`` returns ``G = dL/dZ`` (n, k), which already carries the ``1/n``.
* ``hess_blocks`` returns the per-sample Hessians ``H_i = d²L/dZ_i²`` (n, k, k), also
  with the ``1/n``; ``hvp`` returns ``(d²L/dZ²)·V`` (n, k) for a direction ``V`` (n, k)
  without forming them (``hvp`` takes ``dim`` too; ``hess_blocks`` is row layout only).

The linear layer and the penalty (``weight_decay``) live in :mod:`linearnets.objective`,
which turns these into gradients and Hessians with respect to ``W`` and ``b``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import ConfigError

__all__ = ["Loss", "SquaredError", "SoftmaxCrossEntropy", "SoftmaxMSE", "KLDivergence",
           "LOSSES", "get_loss", "one_hot", "smooth_labels", "entropy"]


def one_hot(y: Tensor, k: int, dtype: torch.dtype) -> Tensor:
    """Integer labels ``y`` (n,) in ``[0, k)`` → one-hot rows (n, k)."""
    Y = torch.zeros(y.shape[0], k, dtype=dtype, device=y.device)
    Y.scatter_(1, y.long().view(-1, 1), 1.0)
    return Y


def smooth_labels(Y: Tensor, epsilon: float) -> Tensor:
    r"""Label smoothing: ``Y' = (1 - ε) Y + ε / k`` (rows stay distributions)."""
    if epsilon == 0.0:
        return Y
    return Y * (1.0 - epsilon) + epsilon / Y.shape[1]


def _is_labels(Y: Tensor) -> bool:
    return not Y.is_floating_point()


def _dense(Y: Tensor, Z: Tensor, dim: int) -> Tensor:
    """Labels → one-hot in Z's layout; probability rows pass through."""
    if not _is_labels(Y):
        return Y
    return torch.zeros_like(Z).scatter_(dim, Y.unsqueeze(dim), 1.0)


def entropy(Y: Tensor) -> Tensor:
    r"""Row entropies ``H(Y_i) = -Σ_j Y_ij log Y_ij`` with ``0 log 0 = 0``; shape (n,)."""
    return -torch.special.xlogy(Y, Y).sum(dim=1)


def _softmax_jvp(P: Tensor, V: Tensor, dim: int = 1) -> Tensor:
    r"""Row-wise softmax Jacobian times V: ``J V = P ⊙ V - P (P·V)`` (J symmetric)."""
    return P * V - P * (P * V).sum(dim=dim, keepdim=True)


class Loss:
    """Interface: value, gradient and curvature of a mean loss over samples."""

    name: str = "loss"
    #: True when the loss needs targets to be probability rows.
    classification: bool = True

    def value(self, Z: Tensor, Y: Tensor, dim: int = 1) -> Tensor:
        raise NotImplementedError

    def per_sample(self, Z: Tensor, Y: Tensor, dim: int = 1) -> Tensor:
        """ℓ(Z_i, Y_i) for every sample (n,), unreduced (``value`` is their mean)."""
        raise NotImplementedError

    def value_and_grad(self, Z: Tensor, Y: Tensor, dim: int = 1) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def grad(self, Z: Tensor, Y: Tensor, dim: int = 1) -> Tensor:
        return self.value_and_grad(Z, Y, dim)[1]

    def hess_blocks(self, Z: Tensor, Y: Tensor) -> Tensor:
        raise NotImplementedError

    def hvp(self, Z: Tensor, Y: Tensor, V: Tensor, dim: int = 1) -> Tensor:
        raise NotImplementedError


@dataclass(frozen=True)
class SquaredError(Loss):
    r"""Half squared error, the loss of linear regression.

    L = (1/n) Σ_i ½ ||Z_i - Y_i||²
    dL/dZ = (Z - Y) / n
    d²L/dZ_i² = I / n
    Shapes: Z, Y (n, k) (k = 1 for one target).
    """

    name: str = "squared"
    classification: bool = False

    def value(self, Z, Y, dim=1):
        return 0.5 * (Z - Y).square().sum() / Z.shape[1 - dim]

    def per_sample(self, Z, Y, dim=1):
        return 0.5 * (Z - Y).square().sum(dim=dim)

    def value_and_grad(self, Z, Y, dim=1):
        n = Z.shape[1 - dim]
        R = Z - Y                                            # (n, k) residuals
        return 0.5 * R.square().sum() / n, R.div_(n)

    def hess_blocks(self, Z, Y):
        n, k = Z.shape
        eye = torch.eye(k, dtype=Z.dtype, device=Z.device) / n
        return eye.expand(n, k, k)

    def hvp(self, Z, Y, V, dim=1):
        return V / Z.shape[1 - dim]


@dataclass(frozen=True)
class SoftmaxCrossEntropy(Loss):
    r"""Softmax cross-entropy, computed through log-sum-exp (stable for any |Z|).

    P = softmax(Z),  L = -(1/n) Σ_i Σ_j Y_ij log P_ij
    dL/dZ = (P - Y) / n                      (rows of Y sum to 1)
    d²L/dZ_i² = (diag(P_i) - P_i P_iᵀ) / n   (the softmax Jacobian)
    Shapes: Z, Y (n, k).
    """

    name: str = "cross_entropy"

    def value(self, Z, Y, dim=1):
        log_P = torch.log_softmax(Z, dim=dim)
        if _is_labels(Y):
            return -log_P.gather(dim, Y.unsqueeze(dim)).sum() / Z.shape[1 - dim]
        return -(Y * log_P).sum() / Z.shape[1 - dim]

    def per_sample(self, Z, Y, dim=1):
        log_P = torch.log_softmax(Z, dim=dim)
        if _is_labels(Y):
            return -log_P.gather(dim, Y.unsqueeze(dim)).squeeze(dim)
        return -(Y * log_P).sum(dim=dim)

    def value_and_grad(self, Z, Y, dim=1):
        n = Z.shape[1 - dim]
        log_P = torch.log_softmax(Z, dim=dim)               # (n, k)
        if _is_labels(Y):                                   # L = -mean log P[i, y_i]; G = P - onehot(y)
            idx = Y.unsqueeze(dim)
            L = -log_P.gather(dim, idx).sum() / n
            return L, log_P.exp_().scatter_(dim, idx, -1.0, reduce="add").div_(n)
        L = -(Y * log_P).sum() / n
        return L, log_P.exp_().sub_(Y).div_(n)

    def hess_blocks(self, Z, Y):
        P = torch.softmax(Z, dim=1)                          # (n, k)
        return (torch.diag_embed(P) - P[:, :, None] * P[:, None, :]) / Z.shape[0]

    def hvp(self, Z, Y, V, dim=1):
        return _softmax_jvp(torch.softmax(Z, dim=dim), V, dim) / Z.shape[1 - dim]


@dataclass(frozen=True)
class KLDivergence(SoftmaxCrossEntropy):
    r"""KL divergence from the targets to the softmax: ``KL(Y ‖ P) = CE(Y, P) - H(Y)``.

    L = (1/n) Σ_i Σ_j Y_ij (log Y_ij - log P_ij)       (0 log 0 = 0)
    Gradient and Hessian equal cross-entropy's: H(Y) does not depend on Z.
    With one-hot Y, H(Y) = 0 and the value equals cross-entropy's too.
    """

    name: str = "kl"

    def value(self, Z, Y, dim=1):
        if _is_labels(Y):                                   # one-hot: H(Y) = 0, KL = CE
            return super().value(Z, Y, dim)
        return (torch.special.xlogy(Y, Y) - Y * torch.log_softmax(Z, dim=dim)).sum() / Z.shape[1 - dim]

    def per_sample(self, Z, Y, dim=1):
        if _is_labels(Y):
            return super().per_sample(Z, Y, dim)
        return (torch.special.xlogy(Y, Y) - Y * torch.log_softmax(Z, dim=dim)).sum(dim=dim)

    def value_and_grad(self, Z, Y, dim=1):
        if _is_labels(Y):
            return super().value_and_grad(Z, Y, dim)
        n = Z.shape[1 - dim]
        log_P = torch.log_softmax(Z, dim=dim)
        L = (torch.special.xlogy(Y, Y) - Y * log_P).sum() / n
        return L, log_P.exp_().sub_(Y).div_(n)


@dataclass(frozen=True)
class SoftmaxMSE(Loss):
    r"""Squared error on softmax probabilities (the notes' "MSE" for classification).

    P = softmax(Z),  R = P - Y,  L = (1/n) Σ_i ½ ||R_i||²
    dL/dZ_i = J_i R_i / n,   J_i = diag(P_i) - P_i P_iᵀ   (exact softmax Jacobian)
      — the notes' (ŷ - y) ŷ (1 - ŷ) is the diagonal part of J_i R_i only.
    d²L/dZ_i² = (J_i J_i + M_i) / n,  M_i = Σ_j R_ij ∇²P_ij
              = diag(P ⊙ u) - (P ⊙ u) Pᵀ - P (P ⊙ u)ᵀ,  u = R - (R·P)   (per row)
    Not convex: M_i can be indefinite.
    Shapes: Z, Y (n, k).
    """

    name: str = "mse"

    def value(self, Z, Y, dim=1):
        return 0.5 * (torch.softmax(Z, dim=dim) - _dense(Y, Z, dim)).square().sum() / Z.shape[1 - dim]

    def per_sample(self, Z, Y, dim=1):
        return 0.5 * (torch.softmax(Z, dim=dim) - _dense(Y, Z, dim)).square().sum(dim=dim)

    def value_and_grad(self, Z, Y, dim=1):
        n = Z.shape[1 - dim]
        Y = _dense(Y, Z, dim)
        P = torch.softmax(Z, dim=dim)
        R = P - Y                                            # (n, k)
        return 0.5 * R.square().sum() / n, _softmax_jvp(P, R, dim).div_(n)

    @staticmethod
    def _parts(Z, Y, dim=1):
        P = torch.softmax(Z, dim=dim)
        R = P - _dense(Y, Z, dim)
        U = R - (R * P).sum(dim=dim, keepdim=True)           # u = r - s, s = r·p
        return P, P * U                                       # P, P ⊙ u

    def hess_blocks(self, Z, Y):
        P, PU = self._parts(Z, Y)
        J = torch.diag_embed(P) - P[:, :, None] * P[:, None, :]          # (n, k, k)
        M = torch.diag_embed(PU) - PU[:, :, None] * P[:, None, :] - P[:, :, None] * PU[:, None, :]
        return (J @ J + M) / Z.shape[0]

    def hvp(self, Z, Y, V, dim=1):
        P, PU = self._parts(Z, Y, dim)
        JJV = _softmax_jvp(P, _softmax_jvp(P, V, dim), dim)
        MV = PU * V - PU * (P * V).sum(dim=dim, keepdim=True) - P * (PU * V).sum(dim=dim, keepdim=True)
        return (JJV + MV) / Z.shape[1 - dim]


LOSSES: dict[str, Loss] = {
    "squared": SquaredError(),
    "cross_entropy": SoftmaxCrossEntropy(),
    "mse": SoftmaxMSE(),
    "kl": KLDivergence(),
}


def get_loss(name: str | Loss) -> Loss:
    """Look a loss up by name (``squared``, ``cross_entropy``, ``mse``, ``kl``)."""
    if isinstance(name, Loss):
        return name
    try:
        return LOSSES[name]
    except KeyError:
        raise ConfigError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}") from None
