"""Numerical stress and edge cases: each has a defined behaviour and a test."""

import numpy as np
import pytest
import torch
from helpers import full_batch, relerr

import linearnets as ln
from linearnets.losses import LOSSES, one_hot, smooth_labels
from linearnets.params import Params


@pytest.mark.parametrize("name", ["cross_entropy", "kl", "mse"])
@pytest.mark.parametrize("scale", [1e2, 1e3, 1e4])
def test_huge_logits_float32_match_float64(name, scale):
    g = torch.Generator().manual_seed(0)
    Z64 = (torch.rand(64, 10, generator=g, dtype=torch.float64) * 2 - 1) * scale
    Y64 = smooth_labels(one_hot(torch.randint(0, 10, (64,), generator=g), 10, torch.float64), 0.1)
    L64, G64 = LOSSES[name].value_and_grad(Z64, Y64)
    L32, G32 = LOSSES[name].value_and_grad(Z64.float(), Y64.float())
    assert torch.isfinite(L32) and torch.isfinite(G32).all()
    assert abs(float(L32) - float(L64)) <= 1e-5 * max(1.0, abs(float(L64)))
    # float32 precision: entries of G are O(1/n); saturated softmax rounds 1 - p at ~1e-7
    assert float((G32.double() - G64).abs().max()) <= 1e-6
    # labels path, class-major layout: same numbers
    Lc, Gc = LOSSES[name].value_and_grad(Z64.T.contiguous().float(), Y64.T.contiguous().float(), dim=0)
    assert abs(float(Lc) - float(L32)) <= 1e-5 * max(1.0, abs(float(L32)))


@pytest.mark.parametrize("loss", ["squared", "cross_entropy"])
def test_large_features_float32_match_float64(loss):
    rng = np.random.default_rng(1)
    X = rng.uniform(-1e6, 1e6, size=(500, 8))
    y = rng.integers(0, 3, 500)
    Y = one_hot(torch.from_numpy(y), 3, torch.float64) if loss != "squared" else torch.from_numpy(X[:, :3] @ np.ones((3, 3)) * 1e-6)
    W = torch.from_numpy(rng.standard_normal((8, 3)) * 1e-6)
    b = torch.zeros(3, dtype=torch.float64)
    p64 = full_batch(torch.from_numpy(X), Y, loss, 1e-3)
    p32 = full_batch(torch.from_numpy(X).float(), Y.float(), loss, 1e-3)
    F64, gW64, gb64 = p64.value_and_grad(Params(W, b))
    F32, gW32, gb32 = p32.value_and_grad(Params(W.float(), b.float()))
    assert torch.isfinite(F32) and torch.isfinite(gW32).all()
    assert abs(float(F32) - float(F64)) <= 1e-4 * abs(float(F64))
    assert relerr(gW32, gW64) <= 1e-4 and relerr(gb32, gb64) <= 1e-4


def test_half_precision_inputs_are_widened_and_half_training_refused():
    X, y = ln.data.load_digits()
    for t in (torch.float16, torch.bfloat16):
        m = ln.SoftmaxRegression(solver="lbfgs", weight_decay=1e-4).fit(torch.from_numpy(X).to(t), y)
        assert m.score(X, y) > 0.9
    m = ln.SoftmaxRegression(epochs=2).fit(X.astype(np.float16), y)
    assert m._params.W.dtype == torch.float32
    for dt in ("float16", "bfloat16", torch.float16):
        with pytest.raises(ln.ConfigError, match="half precision"):
            ln.SoftmaxRegression(dtype=dt).fit(X, y)


def test_constant_feature_gets_zero_weight_with_a_warning():
    rng = np.random.default_rng(2)
    X = np.hstack([rng.standard_normal((200, 3)), np.full((200, 1), 7.0)])
    y = X[:, :3] @ [1.0, -2.0, 0.5] + 3.0
    with pytest.warns(ln.IllConditionedWarning):
        m = ln.LinearRegression(solver="exact").fit(X, y)
    assert abs(m.coef_[3]) < 1e-10 and np.allclose(m.predict(X), y)
    s = ln.SoftmaxRegression(epochs=3).fit(X, (y > 3).astype(int))        # SGD: no special case needed
    assert np.isfinite(s.coef_).all()


def test_duplicated_rows_do_not_change_least_squares():
    X, y = ln.data.load_diabetes()
    a = ln.LinearRegression(solver="exact").fit(X, y)
    b = ln.LinearRegression(solver="exact").fit(np.vstack([X, X]), np.concatenate([y, y]))
    assert relerr(b.coef_, a.coef_) < 1e-10


def test_single_class_is_refused():
    X = np.random.default_rng(0).standard_normal((10, 3))
    with pytest.raises(ln.DataError, match="at least 2 classes"):
        ln.SoftmaxRegression().fit(X, np.zeros(10, int))


def test_class_absent_from_minibatches():
    X, y = ln.data.load_digits()
    keep = (y != 9) | (np.arange(len(y)) < 400)                          # class 9 is rare
    X, y = X[keep], y[keep]
    m = ln.SoftmaxRegression(solver="sgd", batch_size=4, lr=0.5, epochs=2).fit(X, y)
    assert list(m.classes_) == list(range(10)) and m.predict_proba(X).shape[1] == 10
    assert np.isfinite(m.coef_).all()


def test_fewer_samples_than_features():
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((20, 50)), rng.standard_normal(20)
    with pytest.warns(ln.IllConditionedWarning):
        m = ln.LinearRegression(solver="exact").fit(X, y)
    assert np.allclose(m.predict(X), y, atol=1e-8)                       # interpolates: min-norm solution
    Xc = X - X.mean(0)
    assert relerr(m.coef_, np.linalg.lstsq(Xc, y - y.mean(), rcond=None)[0]) < 1e-8
    r = ln.LinearRegression(solver="exact", weight_decay=1e-2).fit(X, y)   # ridge: well-posed, no warning
    assert np.isfinite(r.coef_).all()
    s = ln.SoftmaxRegression(solver="newton", weight_decay=1e-2, epochs=30).fit(X, (y > 0).astype(int))
    assert s.score(X, (y > 0).astype(int)) == 1.0


def test_ill_conditioned_exact_is_accurate():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((3000, 6))
    X[:, 5] = X[:, 0] + 1e-7 * rng.standard_normal(3000)               # cond ≈ 1e7
    y = X @ rng.standard_normal(6) + 0.5
    with pytest.warns(ln.IllConditionedWarning):
        m = ln.LinearRegression(solver="exact").fit(X, y)
    Xc = X - X.mean(0)
    assert relerr(m.coef_, np.linalg.lstsq(Xc, y - y.mean(), rcond=None)[0]) < 1e-6
