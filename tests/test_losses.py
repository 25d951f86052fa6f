"""Every loss against independent PyTorch definitions and torch.autograd, in float64."""

import hypothesis.strategies as st
import pytest
import torch
import torch.nn.functional as F
from helpers import full_batch, relerr
from hypothesis import given, settings

from linearnets.losses import LOSSES, entropy, one_hot, smooth_labels
from linearnets.params import Params

DT = torch.float64
TOL = 1e-10


def make(n=37, d=5, k=4, *, targets="hard", smoothing=0.0, seed=0, regression=False):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=DT)
    W = torch.randn(d, k, generator=g, dtype=DT)
    b = torch.randn(k, generator=g, dtype=DT)
    if regression:
        Y = torch.randn(n, k, generator=g, dtype=DT)
    elif targets == "hard":
        Y = one_hot(torch.randint(0, k, (n,), generator=g), k, DT)
    else:                                                   # soft: teacher's tempered softmax
        Y = torch.softmax(torch.randn(n, k, generator=g, dtype=DT) * 2.0, dim=1)
    return X, smooth_labels(Y, smoothing), W, b


def reference_value(name, Z, Y):
    """Independent definitions (torch.nn.functional where it has one)."""
    if name == "squared":
        return 0.5 * ((Z - Y) ** 2).sum(dim=1).mean()
    if name == "cross_entropy":
        return F.cross_entropy(Z, Y)                        # probability targets
    if name == "kl":
        return F.kl_div(F.log_softmax(Z, dim=1), Y, reduction="batchmean")
    if name == "mse":
        return 0.5 * ((F.softmax(Z, dim=1) - Y) ** 2).sum(dim=1).mean()
    raise KeyError(name)


CASES = [(name, targets, smoothing, wd)
         for name in LOSSES
         for targets in (["hard", "soft"] if name != "squared" else ["real"])
         for smoothing in ([0.0, 0.1] if name != "squared" else [0.0])
         for wd in (0.0, 0.03)]


@pytest.mark.parametrize("name,targets,smoothing,wd", CASES)
def test_value_gradient_hessian_match_autograd(name, targets, smoothing, wd):
    loss = LOSSES[name]
    X, Y, W, b = make(targets=targets, smoothing=smoothing, regression=name == "squared")
    Z = X @ W + b
    assert relerr(loss.value(Z, Y), reference_value(name, Z, Y)) < TOL

    # dL/dZ
    Zr = Z.clone().requires_grad_(True)
    (gZ,) = torch.autograd.grad(reference_value(name, Zr, Y), Zr)
    L, G = loss.value_and_grad(Z, Y)
    assert relerr(G, gZ) < TOL and relerr(L, reference_value(name, Z, Y)) < TOL

    # the objective: gradient w.r.t. W and b, with weight decay on W only
    problem = full_batch(X, Y, loss, wd, chunk_rows=16)        # several chunks on purpose
    params = Params(W.clone(), b.clone())

    def objective(theta):
        Wb = theta.reshape(W.shape[0] + 1, W.shape[1])
        return reference_value(name, X @ Wb[:-1] + Wb[-1], Y) + 0.5 * wd * (Wb[:-1] ** 2).sum()

    theta = params.flat().requires_grad_(True)
    (g_ref,) = torch.autograd.grad(objective(theta), theta)
    Fv, gW, gb = problem.value_and_grad(params)
    assert relerr(Fv, objective(theta.detach())) < TOL
    assert relerr(gW, g_ref.reshape(-1, W.shape[1])[:-1]) < TOL
    assert relerr(gb, g_ref.reshape(-1, W.shape[1])[-1]) < TOL

    # Hessian and Hessian-vector products
    H_ref = torch.autograd.functional.hessian(objective, params.flat())
    assert relerr(problem.hessian(params), H_ref) < TOL
    V = torch.randn_like(params.flat())
    VW, Vb = V.reshape(-1, W.shape[1])[:-1], V.reshape(-1, W.shape[1])[-1]
    HW, Hb = problem.hvp(params, VW, Vb)
    assert relerr(torch.cat([HW, Hb[None]]).reshape(-1), H_ref @ V) < TOL
    # per-sample blocks and the loss-level hvp
    Hz = torch.autograd.functional.hessian(lambda z: reference_value(name, z.reshape(Z.shape), Y),
                                           Z.reshape(-1))
    blocks = loss.hess_blocks(Z, Y)
    dense = torch.block_diag(*blocks)
    assert relerr(dense, Hz) < TOL
    VZ = torch.randn_like(Z)
    assert relerr(loss.hvp(Z, Y, VZ), (Hz @ VZ.reshape(-1)).reshape(Z.shape)) < TOL


def test_cross_entropy_is_stable_for_huge_logits():
    Z = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0]], dtype=torch.float32)
    Y = one_hot(torch.tensor([1, 1]), 3, torch.float32)
    L, G = LOSSES["cross_entropy"].value_and_grad(Z, Y)
    assert torch.isfinite(L) and torch.isfinite(G).all()
    assert abs(float(L) - 1e4) < 1.0                        # -log p = 2e4 for row 0, ~0 for row 1


def test_label_smoothing_matches_pytorch():
    X, Y, W, b = make()
    Z = X @ W + b
    y = Y.argmax(dim=1)
    ours = LOSSES["cross_entropy"].value(Z, smooth_labels(Y, 0.2))
    assert relerr(ours, F.cross_entropy(Z, y, label_smoothing=0.2)) < TOL


@settings(max_examples=60, deadline=None)
@given(shift=st.floats(-50, 50), seed=st.integers(0, 10_000))
def test_softmax_losses_invariant_to_shifting_all_logits(shift, seed):
    X, Y, W, b = make(n=8, seed=seed, targets="soft")
    Z = X @ W + b
    for name in ("cross_entropy", "kl", "mse"):
        a, ga = LOSSES[name].value_and_grad(Z, Y)
        c, gc = LOSSES[name].value_and_grad(Z + shift, Y)
        assert abs(float(a - c)) <= 1e-9 * max(1.0, abs(float(a)))
        assert relerr(gc, ga) < 1e-8 or float(ga.norm()) < 1e-12


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), soft=st.booleans())
def test_cross_entropy_equals_kl_plus_entropy(seed, soft):
    X, Y, W, b = make(n=9, seed=seed, targets="soft" if soft else "hard")
    Z = X @ W + b
    ce, g_ce = LOSSES["cross_entropy"].value_and_grad(Z, Y)
    kl, g_kl = LOSSES["kl"].value_and_grad(Z, Y)
    assert abs(float(ce - (kl + entropy(Y).mean()))) < 1e-12
    assert float((g_ce - g_kl).abs().max()) == 0.0
    if not soft:
        assert abs(float(ce - kl)) < 1e-12                 # one-hot: H(P) = 0


def test_mse_gradient_diagonal_is_the_notes_formula_only_in_part():
    # the notes: (ŷ - y) ŷ (1 - ŷ); the exact gradient adds the off-diagonal Jacobian terms
    Z = torch.tensor([[0.0, 0.0, 1.0]], dtype=DT)
    Y = torch.tensor([[0.0, 0.0, 1.0]], dtype=DT)
    P = torch.softmax(Z, dim=1)
    G = LOSSES["mse"].grad(Z, Y)
    diag_part = (P - Y) * P * (1 - P)
    assert not torch.allclose(G, diag_part)
    off = -P * ((P - Y) * P).sum() + P * P * (P - Y)       # J R - diag(J) R
    assert torch.allclose(G, diag_part + off)
