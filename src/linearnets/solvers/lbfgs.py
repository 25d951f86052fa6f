r"""Limited-memory BFGS (``lbfgs``): a quasi-Newton direction from the last m steps.

Two-loop recursion over pairs (s_j, y_j) = (θ_{j+1} - θ_j, ∇F_{j+1} - ∇F_j), initial
scaling γ = sᵀy / yᵀy; pairs with sᵀy ≤ 1e-10·|s||y| are skipped to keep the
approximation positive definite. The first step is -g / max|g|. Backtracking as in
:mod:`.fullbatch`. Memory O(m·p), one gradient per iteration when t = 1 is accepted.
"""

from __future__ import annotations

from collections import deque

import torch
from torch import Tensor

from ..objective import FullBatch
from ..params import Params
from .fullbatch import FullBatchSolver


class LBFGS(FullBatchSolver):
    name = "lbfgs"
    centred = True

    def parameter_copies(self) -> int:
        return 2 * self.config.history_size + 10         # the (s, y) pairs, and what any solver holds

    def init(self, d, k, dtype, device) -> None:
        super().init(d, k, dtype, device)
        self.pairs: deque[tuple[Tensor, Tensor, float]] = deque(maxlen=self.config.history_size)

    def state_dict(self) -> dict:
        if not self.pairs:
            return {}
        return {"s": torch.stack([s for s, _, _ in self.pairs]), "y": torch.stack([y for _, y, _ in self.pairs])}

    def load_state_dict(self, state: dict) -> None:
        self.pairs.clear()
        if "s" in state:
            for s, y in zip(state["s"], state["y"]):
                self.pairs.append((s.clone(), y.clone(), 1.0 / float(s @ y)))

    def direction(self, problem: FullBatch, params: Params, g: Tensor) -> Tensor:
        if not self.pairs:
            return -g / float(g.abs().max())
        q = g.clone()
        alphas = []
        for s, y, rho in reversed(self.pairs):
            a = rho * float(s @ q)
            q.add_(y, alpha=-a)
            alphas.append(a)
        s, y, _ = self.pairs[-1]
        q.mul_(float(s @ y) / float(y @ y))
        for (s, y, rho), a in zip(self.pairs, reversed(alphas)):
            b = rho * float(y @ q)
            q.add_(s, alpha=a - b)
        return -q

    def after_step(self, s: Tensor, g_old: Tensor, g_new: Tensor) -> None:
        y = g_new - g_old
        sy = float(s @ y)
        if sy > 1e-10 * float(s.norm() * y.norm()):
            self.pairs.append((s, y, 1.0 / sy))
