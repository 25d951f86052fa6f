"""One SGD epoch on the reference workload, side by side (issue: speed).

Softmax regression, 60 000 × 784 → 10 float32 (synthetic, pixel-like), batch 256, lr 0.1, a fresh
permutation every epoch. Median of ≥ 5 epochs after a warm-up, all in this one process:

  linearnets       SoftmaxRegression(solver="sgd").fit — the public estimator (epoch time from history_)
  pytorch          DataLoader(TensorDataset, shuffle=True) + nn.Linear + CrossEntropyLoss + optim.SGD
  from scratch     the book's loop: softmax by exp/sum, CE by indexing, autograd, manual update, DataLoader
  sklearn          SGDClassifier(loss="log_loss"), one pass (partial_fit)
  floor            one full-batch forward + backward: X@W + b, softmax, Xᵀ@G

Also the same on digits (1797 × 64), 10 epochs through the estimator, and accuracy after 3 epochs.

    linearnets bench sgd  (or: python benchmarks/bench_sgd.py) [--repeats 5] [--n 60000]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from sklearn.linear_model import SGDClassifier
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import linearnets as ln

from .common import machine, median_time, table


def floor_pass(X, Y, W, b):
    Z = torch.addmm(b, X, W)                      # (n, k)
    P = torch.softmax(Z, dim=1)
    G = (P - Y) / X.shape[0]
    return X.T @ G, G.sum(0)                      # (d, k), (k,)


def pytorch_epoch(loader, model, opt, loss_fn):
    for Xb, yb in loader:
        opt.zero_grad()
        loss_fn(model(Xb), yb).backward()
        opt.step()


def scratch_epoch(loader, W, b, lr):
    def softmax(O):
        E = torch.exp(O)
        return E / E.sum(1, keepdim=True)
    for Xb, yb in loader:
        Yhat = softmax(Xb @ W + b)
        loss = -torch.log(Yhat[range(len(yb)), yb]).mean()
        loss.backward()
        with torch.no_grad():
            W -= lr * W.grad
            b -= lr * b.grad
            W.grad.zero_()
            b.grad.zero_()


def accuracy_torch(forward, X, y):
    with torch.no_grad():
        return float((forward(X).argmax(1) == y).float().mean())


def main(argv=None):
    ap = argparse.ArgumentParser(prog=f"linearnets bench {__name__.rsplit('.', 1)[-1]}")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--n", type=int, default=60000)
    args = ap.parse_args(argv)
    R = args.repeats
    data = ln.data.fashion_mnist_like(n=args.n + 10000, seed=0)
    Xnp, ynp = data.X[:args.n], data.y[:args.n]
    Xte, yte = data.X[args.n:], data.y[args.n:]
    X, y = torch.from_numpy(Xnp), torch.from_numpy(ynp)
    n, d, k = X.shape[0], X.shape[1], 10
    print(f"workload: {n} × {d} → {k}, float32, batch 256, lr 0.1; {machine()}")

    # the floor
    Y = torch.nn.functional.one_hot(y, k).float()
    W0, b0 = torch.zeros(d, k), torch.zeros(k)
    t_floor = median_time(lambda: floor_pass(X, Y, W0, b0), repeats=R)

    # linearnets through the estimator
    model = ln.SoftmaxRegression(solver="sgd", lr=0.1, batch_size=256, epochs=R + 1, seed=0).fit(Xnp, ynp)
    t_ours = float(np.median([r["seconds"] for r in model.history_[1:]]))
    acc3_ours = ln.SoftmaxRegression(solver="sgd", lr=0.1, batch_size=256, epochs=3, seed=0).fit(Xnp, ynp).score(Xte, yte)

    # idiomatic PyTorch
    torch.manual_seed(0)
    loader = DataLoader(TensorDataset(X, y), batch_size=256, shuffle=True)
    net, loss_fn = nn.Linear(d, k), nn.CrossEntropyLoss()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    times = []
    for epoch in range(max(3, R + 1)):
        t0 = time.perf_counter()
        pytorch_epoch(loader, net, opt, loss_fn)
        times.append(time.perf_counter() - t0)
        if epoch == 2:
            acc3_torch = accuracy_torch(net, torch.from_numpy(Xte), torch.from_numpy(yte))
    t_torch = float(np.median(times[1:]))

    # the book's from-scratch loop
    W = torch.normal(0, 0.01, (d, k), requires_grad=True)
    b = torch.zeros(k, requires_grad=True)
    t_scratch = median_time(lambda: scratch_epoch(loader, W, b, 0.1), repeats=max(2, R // 2))

    # scikit-learn, one pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = SGDClassifier(loss="log_loss", learning_rate="constant", eta0=0.1, alpha=0.0, random_state=0)
        classes = np.arange(k)
        t_sk = median_time(lambda: sk.partial_fit(Xnp, ynp, classes=classes), repeats=max(2, R // 2))

    rows = [("floor (full-batch fwd+bwd)", f"{t_floor * 1e3:.1f}", "1.00", f"{t_ours / t_floor:.2f}"),
            ("linearnets SGD epoch", f"{t_ours * 1e3:.1f}", f"{t_ours / t_floor:.2f}", "1.00"),
            ("PyTorch DataLoader + nn.Linear", f"{t_torch * 1e3:.1f}", f"{t_torch / t_floor:.2f}", f"{t_torch / t_ours:.1f}× slower"),
            ("book's from-scratch loop", f"{t_scratch * 1e3:.1f}", f"{t_scratch / t_floor:.2f}", f"{t_scratch / t_ours:.1f}× slower"),
            ("sklearn SGDClassifier, one pass", f"{t_sk * 1e3:.1f}", f"{t_sk / t_floor:.2f}", f"{t_sk / t_ours:.1f}× slower")]
    print(table(rows, ("method", "ms / epoch", "× floor", "vs linearnets")))
    print(f"test accuracy after 3 epochs: linearnets {acc3_ours:.4f}, PyTorch {acc3_torch:.4f} "
          f"(difference {100 * (acc3_ours - acc3_torch):+.2f} points)")

    # small problems: digits, 10 epochs through the estimator
    Xd, yd = ln.data.load_digits()
    Xd32 = Xd.astype(np.float32)
    t_small = median_time(lambda: ln.SoftmaxRegression(solver="sgd", lr=0.1, batch_size=256, epochs=10).fit(Xd32, yd),
                          repeats=R)
    Xt, yt = torch.from_numpy(Xd32), torch.from_numpy(yd)

    def torch_digits():
        dl = DataLoader(TensorDataset(Xt, yt), batch_size=256, shuffle=True)
        m, o = nn.Linear(64, 10), None
        o = torch.optim.SGD(m.parameters(), lr=0.1)
        for _ in range(10):
            pytorch_epoch(dl, m, o, nn.CrossEntropyLoss())
    t_small_torch = median_time(torch_digits, repeats=R)
    print(table([("linearnets estimator", f"{t_small * 1e3:.1f}", "1.00"),
                 ("PyTorch DataLoader loop", f"{t_small_torch * 1e3:.1f}", f"{t_small_torch / t_small:.1f}× slower")],
                ("digits, 10 epochs, batch 256", "ms", "vs linearnets")))


if __name__ == "__main__":
    main()
