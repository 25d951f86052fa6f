"""The fast paths keep the semantics: SGD equals a plain minibatch SGD loop; full-batch
gradients in centred coordinates reach the same optimum; CUDA equals CPU (skipped without GPU)."""

import numpy as np
import pytest
import torch
from helpers import full_batch, relerr

import linearnets as ln
from linearnets.data.shuffle import epoch_generator
from linearnets.losses import get_loss, one_hot, smooth_labels
from linearnets.params import Params
from linearnets.solvers import SolverConfig, get_solver
from linearnets.train import TrainState, train


def reference_sgd(X, Y, loss, *, lr, batch_size, epochs, wd, momentum, seed):
    """Textbook minibatch SGD, row layout, dense targets: the semantics the fast path must keep."""
    n, d = X.shape
    k = Y.shape[1]
    W, b = torch.zeros(d, k, dtype=X.dtype), torch.zeros(k, dtype=X.dtype)
    vW, vb = torch.zeros_like(W), torch.zeros_like(b)
    for epoch in range(epochs):                                 # the order: one permutation per epoch,
        g = epoch_generator(seed, epoch)                        # drawn from (seed, epoch) alone
        for idx in torch.randperm(n, generator=g).split(batch_size):
            Z = X[idx] @ W + b
            _, G = loss.value_and_grad(Z, Y[idx])               # dL/dZ (B, k), mean over the batch
            gW, gb = X[idx].T @ G + wd * W, G.sum(0)
            vW, vb = (momentum * vW + gW, momentum * vb + gb) if momentum else (gW, gb)
            W, b = W - lr * vW, b - lr * vb
    return W, b


CASES = [("cross_entropy", "hard", 0.0, 0.0), ("cross_entropy", "smooth", 1e-3, 0.0),
         ("cross_entropy", "hard", 1e-3, 0.9), ("kl", "soft", 0.0, 0.5), ("mse", "hard", 0.0, 0.0),
         ("squared", "real", 1e-2, 0.0), ("squared", "real", 0.0, 0.9)]


@pytest.mark.parametrize("loss_name,targets,wd,momentum", CASES)
def test_fast_sgd_equals_plain_sgd(loss_name, targets, wd, momentum):
    X, y = ln.data.load_digits()
    X = torch.from_numpy(X)
    yt = torch.from_numpy(y)
    if targets == "real":
        Y = torch.stack([X[:, :5].sum(1), X[:, 5:9].sum(1) - 1.0], 1)
    else:
        Y = one_hot(yt, 10, torch.float64)
        if targets == "smooth":
            Y = smooth_labels(Y, 0.1)
        elif targets == "soft":
            Y = torch.softmax(torch.randn(len(y), 10, generator=torch.Generator().manual_seed(1), dtype=torch.float64), 1)
    loss = get_loss(loss_name)
    lr = 0.05 if loss_name == "squared" else 0.5
    cfg = SolverConfig(lr=lr, batch_size=37, epochs=3, momentum=momentum, seed=4)
    params = Params.zeros(X.shape[1], Y.shape[1], dtype=torch.float64)
    fb = full_batch(X, Y, loss, wd)
    train(fb.source, fb.objective, get_solver("sgd")(cfg), TrainState(params), epochs=3)
    W, b = reference_sgd(X, Y, loss, lr=lr, batch_size=37, epochs=3, wd=wd, momentum=momentum, seed=4)
    assert relerr(params.W, W) < 1e-10 and relerr(params.b, b) < 1e-10


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg"])
def test_centred_coordinates_reach_the_same_optimum(solver):
    X, y = ln.data.load_digits()                                  # pixels: non-zero means
    lam = 1e-3
    ref = ln.SoftmaxRegression(solver="newton", weight_decay=lam, epochs=100, tol=1e-12).fit(X, y)
    m = ln.SoftmaxRegression(solver=solver, weight_decay=lam, epochs=1000, tol=1e-10).fit(X, y)
    assert np.abs(m.coef_ - ref.coef_).max() < 1e-6
    # intercepts agree up to the softmax's free shift
    assert np.abs((m.intercept_ - m.intercept_.mean()) - (ref.intercept_ - ref.intercept_.mean())).max() < 1e-6


@pytest.mark.gpu
@pytest.mark.parametrize("solver", ["sgd", "lbfgs", "newton", "newton-cg"])
def test_cuda_equals_cpu(solver):
    X, y = ln.data.load_digits()
    kw = dict(solver=solver, weight_decay=1e-3, epochs=5, dtype="float64", lr=0.5, batch_size=64)
    cpu = ln.SoftmaxRegression(device="cpu", **kw).fit(X, y)
    gpu = ln.SoftmaxRegression(device="cuda", **kw).fit(X, y)
    assert np.abs(cpu.coef_ - gpu.coef_).max() < 1e-8
    assert (cpu.predict(X) == gpu.predict(X)).all()


@pytest.mark.gpu
def test_cuda_exact():
    X, y = ln.data.load_diabetes()
    cpu = ln.LinearRegression(solver="exact").fit(X, y)
    gpu = ln.LinearRegression(solver="exact", device="cuda").fit(X, y)
    assert relerr(gpu.coef_, cpu.coef_) < 1e-10
