r"""Newton's method with the explicit Hessian (``newton``) and matrix-free Newton-CG (``newton-cg``).

newton:     solve (∇²F + μ I) δ = -∇F by Cholesky. μ starts at ``damping`` × mean diag(∇²F)
            and grows ×100 until the factorisation succeeds (Levenberg damping; it handles the
            singular direction of softmax — shifting every logit by one constant — and the
            indefinite Hessian of MSE-on-softmax). Memory O(p²), time O(p³) in p = (d+1)k.
newton-cg:  solve ∇²F δ = -∇F approximately by conjugate gradients, using only Hessian-vector
            products (two passes over the data each), to relative residual min(½, √||g||);
            stops early on negative curvature. Memory O(p).
Both then backtrack along δ (see :mod:`.fullbatch`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import memory
from ..objective import FullBatch
from ..params import Params
from .fullbatch import FullBatchSolver, flat, unflat


class Newton(FullBatchSolver):
    name = "newton"

    def direction(self, problem: FullBatch, params: Params, g: Tensor) -> Tensor:
        p = (problem.d + 1) * problem.k
        memory.require(3 * p * p * torch.finfo(params.W.dtype).bits // 8,
                       f"Newton's Hessian of {p} parameters ({p}×{p}, held three times to factor it)",
                       "use solver='newton-cg', which needs Hessian-vector products only")
        H = problem.hessian(params)                                   # (p, p)
        scale = float(H.diagonal().abs().mean()) or 1.0
        mu = self.config.damping * scale
        eye = torch.eye(H.shape[0], dtype=H.dtype, device=H.device)
        for _ in range(12):
            L, info = torch.linalg.cholesky_ex(H + mu * eye)
            if int(info) == 0:
                return -torch.cholesky_solve(g[:, None], L)[:, 0]
            mu = max(mu * 100.0, 1e-12 * scale)
        return -g


class NewtonCG(FullBatchSolver):
    name = "newton-cg"
    copies = 16                      # the CG vectors (r, p, Hp, x) in centred coordinates, and the rest
    centred = True
    max_cg_iter = 250

    def direction(self, problem: FullBatch, params: Params, g: Tensor) -> Tensor:
        d, k = problem.d, problem.k

        def hvp(v: Tensor) -> Tensor:
            return flat(*problem.hvp(params, *unflat(v, d, k)))

        g_norm = float(g.norm())
        tol = min(0.5, g_norm ** 0.5) * g_norm
        x = torch.zeros_like(g)
        r = -g                                   # residual of H x = -g at x = 0
        p = r.clone()
        rs = float(r @ r)
        for i in range(min(self.max_cg_iter, g.numel())):
            Hp = hvp(p)
            curvature = float(p @ Hp)
            if curvature <= 0:                   # negative curvature: stop with what we have
                return x if i > 0 else -g
            alpha = rs / curvature
            x.add_(p, alpha=alpha)
            r.add_(Hp, alpha=-alpha)
            rs_new = float(r @ r)
            if rs_new ** 0.5 <= tol:
                break
            p.mul_(rs_new / rs).add_(r)
            rs = rs_new
        return x
