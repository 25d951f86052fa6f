"""The scikit-learn contract, input types, soft targets, partial_fit, persistence, errors."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.utils.estimator_checks import check_estimator

import linearnets as ln


def run_check_estimator(est):
    # check_estimator fits rank-deficient toy data (1 sample, constant columns) on purpose;
    # warning about it is the right behaviour, not a failure.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ln.IllConditionedWarning)
        check_estimator(est, on_skip=None)


@pytest.mark.parametrize("est", [ln.LinearRegression(solver="exact"),
                                 ln.SoftmaxRegression(solver="lbfgs", epochs=100)],
                         ids=["linear-exact", "softmax-lbfgs"])
def test_check_estimator_fast(est):
    run_check_estimator(est)


@pytest.mark.slow
# float64 for SGD: check_estimator compares predictions on subsets to rtol 1e-7, below float32 rounding
@pytest.mark.parametrize("est", [ln.LinearRegression(solver="newton"),
                                 ln.SoftmaxRegression(solver="newton", epochs=50),
                                 ln.SoftmaxRegression(solver="sgd", lr=0.5, batch_size=16, epochs=30, dtype="float64")],
                         ids=["linear-newton", "softmax-newton", "softmax-sgd"])
def test_check_estimator_slow(est):
    run_check_estimator(est)


@pytest.fixture(scope="module")
def digits():
    return ln.data.load_digits()


@pytest.mark.parametrize("kind", ["numpy", "pandas", "torch"])
def test_input_types(digits, kind):
    X, y = digits
    if kind == "pandas":
        X = pd.DataFrame(X, columns=[f"p{i}" for i in range(64)])
        y = pd.Series(y)
    elif kind == "torch":
        X, y = torch.from_numpy(X), torch.from_numpy(y)
    m = ln.SoftmaxRegression(solver="lbfgs", weight_decay=1e-4).fit(X, y)
    assert m.score(X, y) > 0.95
    if kind == "pandas":
        assert list(m.feature_names_in_[:2]) == ["p0", "p1"]


def test_soft_targets_and_label_smoothing(digits):
    X, y = digits
    teacher = ln.SoftmaxRegression(solver="lbfgs", weight_decay=1e-4).fit(X, y)
    P = teacher.predict_proba(X)
    student = ln.SoftmaxRegression(solver="lbfgs", loss="kl", weight_decay=1e-4).fit(X, P)
    assert (student.predict(X) == teacher.predict(X)).mean() > 0.97
    assert list(student.classes_) == list(range(10))
    smooth = ln.SoftmaxRegression(solver="lbfgs", label_smoothing=0.2, weight_decay=1e-4).fit(X, y)
    # smoothed targets cap confidence: the mean max-probability drops
    assert smooth.predict_proba(X).max(1).mean() < teacher.predict_proba(X).max(1).mean()


def test_string_labels_and_binary(digits):
    X, y = digits
    names = np.array(["zero", "one"])[(y == 1).astype(int)]
    m = ln.SoftmaxRegression(solver="lbfgs", weight_decay=1e-4).fit(X, names)
    assert set(m.predict(X)) <= {"zero", "one"}
    assert m.decision_function(X).shape == (len(y),)
    assert m.predict_proba(X).shape == (len(y), 2)


def test_partial_fit_continues(digits):
    X, y = digits
    m = ln.SoftmaxRegression(lr=0.5, batch_size=64)
    for _ in range(5):
        m.partial_fit(X, y, classes=np.arange(10))
    assert m.n_iter_ == 5 and m.score(X, y) > 0.9
    with pytest.raises(ln.DataError):
        m.partial_fit(X[:, :10], y)


def test_save_load_roundtrip(tmp_path, digits):
    X, y = digits
    m = ln.SoftmaxRegression(epochs=3).fit(X, y)
    m.save(tmp_path / "model")
    card = json.loads((tmp_path / "model" / "model.json").read_text())
    assert card["task"] == "classification" and card["n_features"] == 64
    assert card["classes"] == list(range(10)) and "torch" in card["versions"]
    assert card["hyperparameters"]["epochs"] == 3 and "loss" in card["metrics"]
    m2 = ln.load(tmp_path / "model")
    assert np.array_equal(m2.predict(X), m.predict(X))
    np.testing.assert_allclose(m2.predict_proba(X), m.predict_proba(X))

    r = ln.LinearRegression().fit(*ln.data.load_diabetes())
    r.save(tmp_path / "reg")
    r2 = ln.load(tmp_path / "reg")
    np.testing.assert_allclose(r2.predict(X[:, :10]), r.predict(X[:, :10]))
    assert r2.coef_.shape == (10,)


def test_load_refuses_bad_files(tmp_path, digits):
    X, y = digits
    ln.SoftmaxRegression(epochs=1).fit(X, y).save(tmp_path / "m")
    card = json.loads((tmp_path / "m" / "model.json").read_text())
    card["n_features"] = 63
    (tmp_path / "m" / "model.json").write_text(json.dumps(card))
    with pytest.raises(ln.ModelFileError, match="do not match"):
        ln.load(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\x80\x04garbage")
    with pytest.raises(ln.ModelFileError):
        ln.load(tmp_path / "m")
    with pytest.raises(ln.ModelFileError, match="not found"):
        ln.load(tmp_path / "nowhere")


@pytest.mark.parametrize("case", ["nan", "inf", "length", "empty"])
def test_bad_training_data(case, digits):
    X, y = digits
    X = X.copy()
    if case == "nan":
        X[3, 4] = np.nan
    elif case == "inf":
        X[0, 0] = np.inf
    elif case == "length":
        y = y[:-1]
    else:
        X, y = X[:0], y[:0]
    with pytest.raises(ln.DataError):
        ln.SoftmaxRegression(epochs=1).fit(X, y)


def test_wrong_width_at_predict(digits):
    X, y = digits
    m = ln.SoftmaxRegression(epochs=1).fit(X, y)
    with pytest.raises(ln.DataError, match="features"):
        m.predict(X[:, :20])


@pytest.mark.parametrize("rows,match", [([[0.5, 0.7], [1.0, 0.0]], "sum to 1"),
                                        ([[1.5, -0.5], [1.0, 0.0]], "non-negative")])
def test_bad_soft_targets(rows, match):
    X = np.random.default_rng(0).standard_normal((2, 3))
    with pytest.raises(ln.DataError, match=match):
        ln.SoftmaxRegression(epochs=1).fit(X, np.array(rows))


def test_bad_settings():
    X, y = ln.data.load_digits()
    with pytest.raises(ln.ConfigError, match="Invalid learning rate: -1"):
        ln.SoftmaxRegression(lr=-1).fit(X, y)
    with pytest.raises(ln.ConfigError, match="unknown solver"):
        ln.SoftmaxRegression(solver="adam").fit(X, y)
    with pytest.raises(ln.ConfigError, match="unknown loss"):
        ln.SoftmaxRegression(loss="hinge").fit(X, y)
