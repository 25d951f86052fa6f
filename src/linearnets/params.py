r"""The parameters of a linear layer, ``Z = X W + b``, and their flattened form.

``W`` (d, k), ``b`` (k,). Newton's method works on ``θ = vec([W; b])``: the (d+1, k)
matrix with ``b`` as its last row, flattened row-major, so entry ``(a, i)`` of
``[W; b]`` sits at ``θ[a·k + i]`` and the Hessian is indexed the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Params", "ClassMajor"]


@dataclass
class Params:
    W: Tensor  # (d, k)
    b: Tensor  # (k,)

    @classmethod
    def zeros(cls, d: int, k: int, *, dtype=torch.float32, device="cpu") -> "Params":
        return cls(torch.zeros(d, k, dtype=dtype, device=device),
                   torch.zeros(k, dtype=dtype, device=device))

    @property
    def d(self) -> int:
        return self.W.shape[0]

    @property
    def k(self) -> int:
        return self.W.shape[1]

    def flat(self) -> Tensor:
        """θ = vec([W; b]), shape ((d+1)·k,)."""
        return torch.cat([self.W, self.b[None, :]], dim=0).reshape(-1)

    def set_flat(self, theta: Tensor) -> None:
        Wb = theta.reshape(self.d + 1, self.k)
        self.W.copy_(Wb[:-1])
        self.b.copy_(Wb[-1])

    def clone(self) -> "Params":
        return Params(self.W.clone(), self.b.clone())

    def copy_(self, other: "Params") -> "Params":
        self.W.copy_(other.W)
        self.b.copy_(other.b)
        return self

    def to(self, dtype=None, device=None) -> "Params":
        return Params(self.W.to(dtype=dtype, device=device), self.b.to(dtype=dtype, device=device))



@dataclass
class ClassMajor:
    """The parameters in the class-major layout minibatch SGD works in: ``Wt = Wᵀ`` (k, d), ``b``
    (k,), so that ``Zᵀ = Wᵀ Xᵀ + b`` and the update ``Wᵀ ← Wᵀ − η Gᵀ X`` are single products."""

    Wt: Tensor  # (k, d)
    b: Tensor   # (k,)

    @classmethod
    def of(cls, params: Params) -> "ClassMajor":
        """A class-major copy of ``params``."""
        return cls(params.W.T.clone(memory_format=torch.contiguous_format), params.b.clone())

    def clone(self) -> "ClassMajor":
        return ClassMajor(self.Wt.clone(), self.b.clone())

    def view(self) -> Params:
        """These parameters as :class:`Params` (``W`` is a transposed view, no copy)."""
        return Params(self.Wt.T, self.b)

    def write_to(self, params: Params) -> None:
        params.W.copy_(self.Wt.T)
        params.b.copy_(self.b)
