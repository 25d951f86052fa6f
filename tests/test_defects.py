"""The nine defects found at the seams of the first round, each pinned by a test that failed before
the middle was rebuilt ("One road through the middle")."""

import contextlib
import io
import json

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import relerr

import linearnets as ln
from linearnets import cli
from linearnets.data import InMemory, Targets
from linearnets.lab import c01_closed_form
from linearnets.lab.base import LabConfig
from linearnets.losses import get_loss
from linearnets.metrics import evaluate
from linearnets.objective import Objective
from linearnets.params import Params


def run_cli(*args):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()) as out:
        status = cli.main([str(a) for a in args])
    return status, out.getvalue(), err.getvalue()


# 1. The lab's first figure was empty: C1 overrode a private SGD method that the speed work removed.
def test_c1_records_every_sgd_step_through_public_events(tmp_path):
    result = c01_closed_form.run(LabConfig(quick=True))
    F, err = np.asarray(result.series["F"]), np.asarray(result.series["err"])
    assert result.numbers["sgd_steps"] == 3 * 1000 // 10 == len(F) == len(err)
    assert np.isfinite(F).all() and F[-1] < F[0] and err[-1] < err[0]
    c01_closed_form.plot(result, tmp_path)
    for axes in result.figure_data["C1_closed_form_vs_sgd.png"].values():
        assert any(s["kind"] == "line" and s["values"] >= 2 * 300 for s in axes)


# 2. Ties counted as hits: an untrained model (all logits equal) reported accuracy 1.0.
def test_ties_are_one_prediction_not_a_hit_for_every_class(tmp_path):
    X, y = ln.data.load_digits()
    first_class = float(np.mean(y == 0))                     # argmax of equal logits picks class 0
    targets = Targets.for_classes(np.arange(10))
    source = InMemory.from_arrays(X, y, targets, dtype=torch.float64)
    zero = Params.zeros(64, 10, dtype=torch.float64)
    assert evaluate(Objective(get_loss("cross_entropy")), zero, source)["accuracy"] == pytest.approx(first_class)
    # history_: one full-batch step, its accuracy counted at the zero start
    m = ln.SoftmaxRegression(batch_size=len(y), epochs=1).fit(X, y)
    assert m.history_[0]["accuracy"] == pytest.approx(first_class)
    # streamed: the same
    np.save(tmp_path / "d.npy", np.column_stack([X, y]))
    s = ln.SoftmaxRegression(batch_size=len(y), epochs=1).fit(ln.data.open_shards(tmp_path / "d.npy"))
    assert s.history_[0]["accuracy"] == pytest.approx(first_class)


# 3. LinearRegression().partial_fit over chunks kept only the last chunk.
def test_exact_partial_fit_over_chunks_equals_fit_on_all_rows():
    X, y = ln.data.synthetic_regression(n=1000, seed=1)
    whole = ln.LinearRegression().fit(X, y)
    chunked = ln.LinearRegression()
    for part in np.array_split(np.arange(len(y)), 4):
        chunked.partial_fit(X[part], y[part])
    assert relerr(chunked.coef_, whole.coef_) < 1e-10
    assert abs(chunked.intercept_ - whole.intercept_) < 1e-10 * abs(whole.intercept_)
    last = ln.LinearRegression().fit(X[750:], y[750:])
    assert relerr(chunked.coef_, last.coef_) > 1e-8                # not the last chunk's fit


# 4. After set_params(lr=…), partial_fit kept the first fit's learning rate.
def test_partial_fit_honours_set_params_and_continues_the_optimizer():
    X, y = ln.data.load_digits()
    y2 = torch.nn.functional.one_hot(torch.from_numpy(y), 10).to(torch.float64)
    Xt = torch.from_numpy(X)
    kw = dict(batch_size=len(y), momentum=0.5, dtype="float64")
    m = ln.SoftmaxRegression(lr=0.1, **kw)
    m.partial_fit(X, y)
    m.set_params(lr=0.4)
    m.partial_fit(X, y)
    assert [r["lr"] for r in m.history_] == [0.1, 0.4]
    # the textbook: two full-batch momentum steps, lr 0.1 then 0.4, the velocity carried over
    W, b = torch.zeros(64, 10, dtype=torch.float64), torch.zeros(10, dtype=torch.float64)
    vW, vb = torch.zeros_like(W), torch.zeros_like(b)
    loss = get_loss("cross_entropy")
    for lr in (0.1, 0.4):
        _, G = loss.value_and_grad(Xt @ W + b, y2)
        vW, vb = 0.5 * vW + Xt.T @ G, 0.5 * vb + G.sum(0)
        W, b = W - lr * vW, b - lr * vb
    assert relerr(m.coef_, W.T.numpy()) < 1e-10 and relerr(m.intercept_, b.numpy()) < 1e-10


# 5. history_['loss'] was the data loss for SGD but F with the penalty for full-batch solvers.
def test_sgd_history_loss_includes_the_penalty():
    X, y = ln.data.load_digits()
    kw = dict(lr=0.5, batch_size=len(y), weight_decay=0.1, dtype="float64")
    one = ln.SoftmaxRegression(epochs=1, **kw).fit(X, y)
    two = ln.SoftmaxRegression(epochs=2, **kw).fit(X, y)
    # epoch 2's one step is taken at epoch 1's parameters: its loss is F there, penalty included
    F = one.evaluate(X, y)["loss"]
    assert two.history_[1]["loss"] == pytest.approx(F, rel=1e-12)
    penalty = 0.5 * 0.1 * float(np.square(one.coef_).sum())
    assert penalty > 1e-3 * F
    gd = ln.SoftmaxRegression(solver="gd", epochs=1, **{k: v for k, v in kw.items() if k != "batch_size"}).fit(X, y)
    assert gd.history_[0]["loss"] == pytest.approx(F, rel=1e-12)    # one meaning for every solver


# 6. Shards could be trained on but not evaluated, scored or predicted; --val-fraction ignored them.
def test_shards_evaluate_score_predict_and_hold_out(tmp_path):
    X, y = ln.data.load_digits()
    folder = tmp_path / "shards"
    folder.mkdir()
    for i, part in enumerate(np.array_split(np.column_stack([X, y]), 3)):
        np.save(folder / f"p{i}.npy", part)
    shards = ln.data.open_shards(folder)
    m = ln.SoftmaxRegression(solver="lbfgs", epochs=50).fit(shards)
    assert m.score(shards) == pytest.approx(m.score(X, y.astype(float)), abs=1e-12)
    assert (m.predict(shards) == m.predict(X)).all()
    assert m.evaluate(shards) == pytest.approx(m.evaluate(X, y.astype(float)))
    status, out, err = run_cli("train", "--data", folder, "--val-fraction", "0.25", "--epochs", 2,
                               "--out", tmp_path / "run", "--quiet")
    assert status == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["n_val"] > 0 and metrics["n_train"] + metrics["n_val"] == len(y)
    assert metrics["val"]["accuracy"] == pytest.approx(metrics["history"][-1]["val_accuracy"], abs=1e-12)
    status, out, err = run_cli("evaluate", "--model", tmp_path / "run", "--data", folder, "--json")
    assert status == 0, err
    assert json.loads(out)["n"] == len(y)


# 7. metrics.json held two validation cross-entropies (the CLI clipped probabilities at 1e-300).
def test_one_validation_loss_even_for_confidently_wrong_predictions(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(200) * 1e4                         # huge logits after one step
    label = (x > 0).astype(int)
    label[rng.choice(200, 20, replace=False)] ^= 1              # some confidently wrong rows
    pd.DataFrame({"x": x, "y": label}).to_csv(tmp_path / "d.csv", index=False)
    status, _, err = run_cli("train", "--data", tmp_path / "d.csv", "--target", "y", "--lr", 1, "--epochs", 1,
                             "--no-standardize", "--out", tmp_path / "run", "--quiet")
    assert status == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["val"]["loss"] > 691                        # −log(1e-300) = 690.8: no clipping
    assert metrics["val"]["loss"] == pytest.approx(metrics["history"][-1]["val_loss"], rel=1e-9)


# 8. evaluate on labels the model never saw returned a finite cross-entropy.
def test_unknown_labels_are_an_error(tmp_path):
    X, y = ln.data.load_digits()
    keep = y < 5
    m = ln.SoftmaxRegression(epochs=2).fit(X[keep], y[keep])
    with pytest.raises(ln.DataError, match="not fitted with"):
        m.evaluate(X, y)                                        # the loss of an unknown class is undefined
    # accuracy is defined: as scikit-learn's score, an unknown label is a miss (cross_val_score relies on it)
    assert m.score(X, y) == pytest.approx(np.mean(m.predict(X) == y))
    m.save(tmp_path / "m")
    status, _, err = run_cli("evaluate", "--model", tmp_path / "m", "--data", "digits")
    assert status == 2 and "not fitted with" in err


# 9. --lr 0 and --batch-size 0 silently became the CLI's own defaults; --epochs had its own default.
@pytest.mark.parametrize("flag,value,match", [("--lr", 0, "Invalid learning rate: 0"),
                                              ("--batch-size", 0, "Invalid batch_size: 0")])
def test_cli_zero_settings_are_refused(tmp_path, flag, value, match):
    status, _, err = run_cli("train", "--data", "digits", flag, value, "--out", tmp_path / "o", "--quiet")
    assert status == 2 and match in err


@pytest.mark.parametrize("model,cls", [("linear", ln.LinearRegression), ("softmax", ln.SoftmaxRegression)])
def test_cli_defaults_are_the_estimators(tmp_path, model, cls):
    data = "diabetes" if model == "linear" else "digits"
    status, _, err = run_cli("train", "--model", model, "--data", data, "--solver", "sgd", "--out", tmp_path / "o",
                             "--quiet")
    assert status == 0, err
    card = json.loads((tmp_path / "o" / "model.json").read_text())
    defaults = cls().get_params()
    for key in ("batch_size", "epochs", "momentum", "weight_decay", "tol", "seed"):
        assert card["hyperparameters"][key] == defaults[key], key
    assert card["metrics"]["n_iter"] == cls(solver="sgd")._epochs()          # epochs=None: the solver's budget
    assert card["hyperparameters"]["lr"] == "auto"                           # the CLI's one exception (and
    assert card["hyperparameters"]["standardize"] is True                    # standardize), said in --help


# --- found by the cold review of the rebuilt middle ------------------------------------------------
def test_single_output_sgd_with_checkpoints_keeps_the_same_parameters_on_divergence(tmp_path):
    """k = 1: the class-major working copy must be a copy (a checkpoint write once overwrote it)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 5))
    y = X @ rng.standard_normal(5) * 10
    results = []
    for ckpt in (None, tmp_path / "c"):
        m = ln.LinearRegression(solver="sgd", lr=1.5, batch_size=10, epochs=3)
        with pytest.raises(ln.DivergenceError):
            m.fit(X, y, checkpoint_dir=ckpt, checkpoint_every=1 if ckpt else 0)
        results.append((m.coef_.copy(), m.intercept_))
    assert np.array_equal(results[0][0], results[1][0]) and results[0][1] == results[1][1]
    assert np.isfinite(results[0][0]).all()


def test_exact_partial_fit_survives_a_bad_chunk():
    X, y = ln.data.synthetic_regression(n=600, seed=2)
    bad = X[:100].copy()
    bad[3, 1] = np.nan
    m = ln.LinearRegression()
    with pytest.raises(ln.DataError, match="column 1"):
        m.partial_fit(bad, y[:100])
    m.partial_fit(X[:300], y[:300])
    m.partial_fit(X[300:], y[300:])
    assert relerr(m.coef_, ln.LinearRegression().fit(X, y).coef_) < 1e-10


def test_resuming_a_finished_exact_run_does_not_add_the_rows_again(tmp_path):
    X, y = ln.data.load_diabetes()
    a = ln.LinearRegression().fit(X, y, checkpoint_dir=tmp_path)
    b = ln.LinearRegression().fit(X, y, checkpoint_dir=tmp_path, resume=True)
    assert b.resumed_from_ and b.n_iter_ == a.n_iter_ == 1
    assert np.array_equal(a.coef_, b.coef_)


def test_multi_output_models_refuse_one_column_shards(tmp_path):
    X, y = ln.data.load_diabetes()
    m = ln.LinearRegression().fit(X, np.column_stack([y, -y]))
    np.save(tmp_path / "d.npy", np.column_stack([X, y]))
    with pytest.raises(ln.DataError, match="2 outputs"):
        m.evaluate(ln.data.open_shards(tmp_path / "d.npy"))


@pytest.mark.parametrize("n", [300, 3000, 5000, 9000])
def test_shards_split_holds_out_the_fraction_asked_for(tmp_path, n):
    np.save(tmp_path / "d.npy", np.random.default_rng(0).standard_normal((n, 3)))
    train, val = ln.data.open_shards(tmp_path / "d.npy").split(0.2, seed=4)
    assert train.n + val.n == n and abs(val.n - 0.2 * n) <= 0.2 * n / 16 + 1


def test_partial_fit_keeps_the_models_dtype_after_set_params():
    X, y = ln.data.load_digits()
    m = ln.SoftmaxRegression().partial_fit(X, y, classes=np.arange(10))
    m.set_params(dtype="float64")
    m.partial_fit(X, y)
    assert m.n_iter_ == 2 and m.coef_.dtype == np.float64


def test_label_smoothing_streamed_equals_in_memory_bitwise(tmp_path):
    X, y = ln.data.load_digits()
    np.save(tmp_path / "d.npy", np.column_stack([X, y]))
    kw = dict(label_smoothing=0.1, epochs=2, lr=0.5, batch_size=64)
    a = ln.SoftmaxRegression(**kw).fit(X, y.astype(float))
    b = ln.SoftmaxRegression(**kw).fit(ln.data.open_shards(tmp_path / "d.npy"))
    assert np.array_equal(a.coef_, b.coef_) and np.array_equal(a.intercept_, b.intercept_)


def test_a_failed_fit_leaves_the_model_unfitted():
    X, y = ln.data.load_digits()
    m = ln.SoftmaxRegression(epochs=1).fit(X, y)
    bad = X.copy()
    with pytest.raises(ln.DataError):
        m.fit(bad, np.zeros(len(y)))                          # one class
    with pytest.raises(Exception, match="not fitted"):
        m.predict(X)
