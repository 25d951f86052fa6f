"""linearnets.objective directly: the pure Objective over one block against torch.autograd, and the
FullBatch reducer — chunked, split into rank shares, or replayed as simulated ranks — against one block."""

import numpy as np
import pytest
import torch
from helpers import relerr
from hypothesis import given, settings
from hypothesis import strategies as st

from linearnets.data import InMemory, Interleaved, Targets
from linearnets.data.source import Block
from linearnets.losses import get_loss
from linearnets.objective import FullBatch, Objective
from linearnets.params import Params

N, D, K = 37, 5, 4


def problem(loss_name, *, seed=0, smoothing=0.0, wd=0.3):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(N, D, generator=g, dtype=torch.float64)
    if loss_name == "squared":
        Y = torch.randn(N, K, generator=g, dtype=torch.float64)
        targets, T, labels = Targets("regression", K), Y.T.contiguous(), None
        rows = Y
    else:
        labels = torch.randint(0, K, (N,), generator=g)
        targets = Targets("classification", K, np.arange(K), smoothing)
        T, _ = targets.encode(labels.numpy(), torch.float64)
        rows = torch.nn.functional.one_hot(labels, K).double() * (1 - smoothing) + smoothing / K
    params = Params(torch.randn(D, K, generator=g, dtype=torch.float64), torch.randn(K, generator=g, dtype=torch.float64))
    return Objective(get_loss(loss_name), wd), InMemory(X, T, labels, targets), X, rows, params


def reference(loss_name, X, rows, theta, wd):
    """F(θ) written plainly in the row layout, for autograd."""
    Wb = theta.reshape(D + 1, K)
    Z = X @ Wb[:-1] + Wb[-1]
    if loss_name == "squared":
        L = 0.5 * (Z - rows).square().sum(1).mean()
    elif loss_name == "mse":
        L = 0.5 * (torch.softmax(Z, 1) - rows).square().sum(1).mean()
    elif loss_name == "kl":
        L = (torch.special.xlogy(rows, rows) - rows * torch.log_softmax(Z, 1)).sum(1).mean()
    else:
        L = -(rows * torch.log_softmax(Z, 1)).sum(1).mean()
    return L + 0.5 * wd * Wb[:-1].square().sum()


LOSSES = ["squared", "cross_entropy", "mse", "kl"]


@pytest.mark.parametrize("loss_name", LOSSES)
def test_block_terms_match_autograd(loss_name):
    obj, source, X, rows, params = problem(loss_name)
    block = next(source.chunks())
    assert block.m == N
    Wt, b = params.W.T.contiguous(), params.b
    theta = params.flat().requires_grad_(True)
    F_ref = reference(loss_name, X, rows, theta, 0.0)                 # block terms carry no penalty
    (g_ref,) = torch.autograd.grad(F_ref, theta)
    L, gWt, gb = obj.value_and_grad(Wt, b, block)
    assert relerr(L, F_ref.detach()) < 1e-12 and relerr(obj.value(Wt, b, block), F_ref.detach()) < 1e-12
    g = g_ref.reshape(D + 1, K)
    assert relerr(gWt, g[:-1].T) < 1e-12 and relerr(gb, g[-1]) < 1e-12
    H_ref = torch.autograd.functional.hessian(lambda t: reference(loss_name, X, rows, t, 0.0), params.flat())
    H = torch.zeros(D + 1, K, D + 1, K, dtype=torch.float64)
    obj.add_hessian(H, params, block, alpha=2.0)
    assert relerr(H.reshape(H_ref.shape), 2.0 * H_ref) < 1e-12
    V = torch.randn(D + 1, K, dtype=torch.float64)
    HWt, Hb = obj.hvp(Wt, b, V[:-1].T.contiguous(), V[-1], block)
    HV = (H_ref @ V.reshape(-1)).reshape(D + 1, K)
    assert relerr(HWt, HV[:-1].T) < 1e-12 and relerr(Hb, HV[-1]) < 1e-12


@pytest.mark.parametrize("loss_name", LOSSES)
def test_full_batch_is_the_mean_over_all_rows_with_the_penalty(loss_name):
    obj, source, X, rows, params = problem(loss_name, smoothing=0.1 if loss_name != "squared" else 0.0)
    source.chunk_rows = 8                                             # five chunks on purpose
    fb = FullBatch(obj, source)
    assert fb.n_total == N
    theta = params.flat().requires_grad_(True)
    F_ref = reference(loss_name, X, rows, theta, obj.weight_decay)
    (g_ref,) = torch.autograd.grad(F_ref, theta)
    F, gW, gb = fb.value_and_grad(params)
    assert relerr(F, F_ref.detach()) < 1e-12 and relerr(fb.value(params), F_ref.detach()) < 1e-12
    assert relerr(torch.cat([gW, gb[None]]).reshape(-1), g_ref) < 1e-12
    H_ref = torch.autograd.functional.hessian(lambda t: reference(loss_name, X, rows, t, obj.weight_decay),
                                              params.flat())
    assert relerr(fb.hessian(params), H_ref) < 1e-12
    V = torch.randn(D + 1, K, dtype=torch.float64)
    HW, Hb = fb.hvp(params, V[:-1], V[-1])
    assert relerr(torch.cat([HW, Hb[None]]).reshape(-1), H_ref @ V.reshape(-1)) < 1e-12
    assert relerr(fb.feature_mean(), X.mean(0)) < 1e-14


class SummingComm:
    """A communicator that adds the other shares' sums: P shares computed in one process."""

    def __init__(self, others):
        self.others, self.world_size, self.rank = others, len(others) + 1, 0

    def sum_(self, *tensors):
        extra = [o() for o in self.others]
        for i, t in enumerate(tensors):
            for e in extra:
                t += e[i]


@given(P=st.integers(2, 5), seed=st.integers(0, 50))
@settings(max_examples=20, deadline=None)
def test_rank_shares_reduced_equal_the_whole(P, seed):
    """Each rank sums its share; adding the shares' sums gives F and ∇F of every row."""
    obj, source, _, _, params = problem("cross_entropy", seed=seed)
    parts = [source.part(r, P) for r in range(P)]
    assert sum(p.n for p in parts) == N and all(p.shares == parts[0].shares for p in parts)
    whole = FullBatch(obj, source).value_and_grad(params)
    # the sums each other rank would contribute to the all-reduce (their local sums, weights m/N)
    others = [lambda p=p: _local_sums(obj, p, params) for p in parts[1:]]
    fb = FullBatch(obj, parts[0], comm=SummingComm([lambda p=p: (torch.tensor([float(p.n)]),) for p in parts[1:]]))
    assert fb.n_total == N
    fb.comm = SummingComm(others)
    F, gW, gb = fb.value_and_grad(params)
    assert relerr(F, whole[0]) < 1e-12 and relerr(gW, whole[1]) < 1e-12 and relerr(gb, whole[2]) < 1e-12
    assert FullBatch(obj, Interleaved(source, P)).value(params) == pytest.approx(float(whole[0]), rel=1e-12)


def _local_sums(obj, part, params):
    """What FullBatch.value_and_grad sums on one rank before the all-reduce."""
    Wt, b = params.W.T.contiguous(), params.b
    F, gWt, gb = torch.zeros((), dtype=torch.float64), torch.zeros_like(Wt), torch.zeros_like(b)
    for block in part.chunks():
        L, g, h = obj.value_and_grad(Wt, b, block)
        w = block.m / N
        F, gWt, gb = F + L * w, gWt + g * w, gb + h * w
    return F, gWt, gb


def test_objective_is_pure():
    obj, source, X, _, params = problem("cross_entropy")
    block = next(source.chunks())
    before = (params.W.clone(), params.b.clone(), block.X.clone(), block.T.clone())
    for _ in range(2):
        obj.value_and_grad(params.W.T.contiguous(), params.b, block)
        obj.hvp(params.W.T.contiguous(), params.b, params.W.T.contiguous(), params.b, block)
    after = (params.W, params.b, block.X, block.T)
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert float(obj.penalty(params.W)) == pytest.approx(0.5 * 0.3 * float(params.W.square().sum()))
    empty = Block(X[:0], block.T[:0], block.labels[:0])
    assert empty.m == 0
