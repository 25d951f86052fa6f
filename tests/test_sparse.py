"""Sparse rows (scipy.sparse, torch sparse): the same models as dense rows, without densifying."""

import json
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator_sparse_array, check_estimator_sparse_matrix

import linearnets as ln
from linearnets.data.sparse import CSR, gt_x, matmul
from linearnets.train import Callback


def sparse_problem(n=500, d=300, k=4, density=0.05, seed=0):
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=density, format="csr", random_state=seed, dtype=np.float64)
    W = rng.normal(size=(d, k))
    y = np.asarray((X @ W + 0.3 * rng.normal(size=(n, k))).argmax(axis=1)).ravel()
    return X, y


def max_diff(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max())


# --- the two products ----------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 12), d=st.integers(1, 15), k=st.integers(1, 4), density=st.floats(0.0, 1.0),
       seed=st.integers(0, 2**16))
def test_products_equal_dense_ones(n, d, k, density, seed):
    X = sp.random(n, d, density=density, format="csr", random_state=seed, dtype=np.float64)
    Xc = CSR.from_scipy(X, torch.float64)
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(d, k, generator=g, dtype=torch.float64)
    Gt = torch.randn(k, n, generator=g, dtype=torch.float64)
    dense = torch.from_numpy(X.toarray())
    torch.testing.assert_close(matmul(Xc, W), dense @ W, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gt_x(Gt, Xc), Gt @ dense, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(Xc.to_dense(), dense)
    idx = torch.randint(0, max(n, 1), (min(n, 7),), generator=g)
    torch.testing.assert_close(Xc.index_select(0, idx).to_dense(), dense[idx])
    if n:
        torch.testing.assert_close(Xc[1:n - 1].to_dense(), dense[1:n - 1])


# --- CSR and dense give the same model ------------------------------------------------------------
@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg", "newton", "gd"])
def test_full_batch_solvers_equal_on_csr_and_dense(solver):
    X, y = sparse_problem()
    kw = dict(solver=solver, dtype="float64", standardize=False, weight_decay=1e-2, tol=1e-12,
              epochs=300 if solver == "gd" else None, lr=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                       # gd: its limit, on purpose
        a = ln.SoftmaxRegression(**kw).fit(X, y)
        b = ln.SoftmaxRegression(**kw).fit(X.toarray(), y)
    assert max_diff(a.coef_, b.coef_) < 1e-10
    # softmax intercepts are defined up to a common shift: compare them centred, and the probabilities
    assert max_diff(a.intercept_ - a.intercept_.mean(), b.intercept_ - b.intercept_.mean()) < 1e-10
    assert max_diff(a.predict_proba(X), b.predict_proba(X.toarray())) < 1e-10


@pytest.mark.parametrize("solver", ["exact", "lbfgs", "newton", "sgd"])
def test_linear_regression_equal_on_csr_and_dense(solver):
    X, _ = sparse_problem(k=1)
    y = np.asarray(X @ np.arange(X.shape[1]) / 100.0).ravel() + 1.0
    kw = dict(solver=solver, dtype="float64", weight_decay=1e-3, lr=0.05, batch_size=16, epochs=None)
    a = ln.LinearRegression(**kw).fit(X, y)
    b = ln.LinearRegression(**kw).fit(X.toarray(), y)
    assert max_diff(a.coef_, b.coef_) < 1e-10
    assert max_diff(a.predict(X), b.predict(X.toarray())) < 1e-10
    assert abs(a.score(X, y) - b.score(X.toarray(), y)) < 1e-10


@pytest.mark.parametrize("momentum,weight_decay,numba", [(0.0, 0.0, "1"), (0.0, 0.0, "0"), (0.0, 1e-2, "1"),
                                                          (0.9, 0.0, "1"), (0.9, 1e-3, "1")])
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-10), ("float32", 1e-5)])
def test_sgd_on_csr_equals_dense_sgd(momentum, weight_decay, numba, dtype, tol, monkeypatch):
    """The lazy sparse update (rows brought up to date when a batch touches them) is the dense
    update: weights, intercepts, per-epoch losses (with the penalty) and accuracies. Plain steps
    run as compiled loops (linearnets.kernels) and, with LINEARNETS_NUMBA=0, as PyTorch ops."""
    monkeypatch.setenv("LINEARNETS_NUMBA", numba)
    if numba == "1":
        assert ln.kernels.kernels() is not None
    X, y = sparse_problem()
    kw = dict(solver="sgd", dtype=dtype, standardize=False, lr=0.5, batch_size=32, epochs=4,
              momentum=momentum, weight_decay=weight_decay, lr_schedule="step")
    a = ln.SoftmaxRegression(**kw).fit(X, y)
    b = ln.SoftmaxRegression(**kw).fit(X.toarray(), y)
    assert max_diff(a.coef_, b.coef_) < tol
    assert max_diff(a.intercept_, b.intercept_) < tol
    assert max_diff(a.predict_proba(X), b.predict_proba(X.toarray())) < tol
    for ra, rb in zip(a.history_, b.history_):
        assert abs(ra["loss"] - rb["loss"]) < tol * max(1.0, rb["loss"])
        assert ra["accuracy"] == pytest.approx(rb["accuracy"], abs=1e-12)


def test_sparse_inputs_of_every_kind_are_the_same_rows():
    X, y = sparse_problem(n=200, d=50)
    ref = ln.SoftmaxRegression(solver="lbfgs", dtype="float64", weight_decay=1e-2).fit(X, y)
    big = X.copy()
    big.indices, big.indptr = big.indices.astype(np.int64), big.indptr.astype(np.int64)
    t = torch.from_numpy(X.toarray())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)          # torch: "sparse CSR support is in beta"
        torch_csr = t.to_sparse_csr()
    kinds = {"csc": X.tocsc(), "coo": X.tocoo(), "csr_array": sp.csr_array(X), "int64 indices": big,
             "torch csr": torch_csr, "torch coo": t.to_sparse()}
    for name, Xk in kinds.items():
        m = ln.SoftmaxRegression(solver="lbfgs", dtype="float64", weight_decay=1e-2).fit(Xk, y)
        assert max_diff(m.coef_, ref.coef_) < 1e-10, name
        assert max_diff(m.predict_proba(Xk), ref.predict_proba(X)) < 1e-10, name
        assert m.score(Xk, y) == ref.score(X, y), name


def test_sample_and_class_weights_on_sparse_rows():
    X, y = sparse_problem(n=300)
    w = np.random.default_rng(1).uniform(0, 3, size=300)
    for kw in ({"solver": "lbfgs"}, {"solver": "sgd", "momentum": 0.9, "weight_decay": 1e-3, "epochs": 3}):
        a = ln.SoftmaxRegression(dtype="float64", class_weight="balanced", standardize=False, **kw).fit(X, y, sample_weight=w)
        b = ln.SoftmaxRegression(dtype="float64", class_weight="balanced", standardize=False, **kw).fit(X.toarray(), y,
                                                                                               sample_weight=w)
        assert max_diff(a.predict_proba(X), b.predict_proba(X.toarray())) < 1e-10


def test_partial_fit_and_simulated_ranks_on_sparse_rows():
    X, y = sparse_problem(n=400)
    kw = dict(solver="sgd", dtype="float64", standardize=False, lr=0.3, batch_size=20, momentum=0.5, weight_decay=1e-3)
    a, b = ln.SoftmaxRegression(**kw), ln.SoftmaxRegression(**kw)
    for part in np.array_split(np.arange(400), 3):
        a.partial_fit(X[part], y[part], classes=np.unique(y))
        b.partial_fit(X.toarray()[part], y[part], classes=np.unique(y))
    assert max_diff(a.coef_, b.coef_) < 1e-10
    c = ln.SoftmaxRegression(**kw, epochs=2).fit(X, y, simulate_ranks=3)
    d = ln.SoftmaxRegression(**kw, epochs=2).fit(X.toarray(), y, simulate_ranks=3)
    assert max_diff(c.coef_, d.coef_) < 1e-10


@pytest.mark.parametrize("momentum,weight_decay", [(0.9, 1e-2), (0.0, 0.0)])     # lazy rows; plain steps
def test_step_listeners_see_the_present_parameters(momentum, weight_decay):
    """Step events on sparse rows carry every row brought to the present step (the lazy rows too)."""
    X, y = sparse_problem(n=120, d=80)

    class Keep(Callback):
        def __init__(self):
            self.W = []

        def on_step(self, state, step):
            self.W.append(step.params.W.clone())

    runs = []
    for data in (X, X.toarray()):
        keep = Keep()
        ln.SoftmaxRegression(solver="sgd", dtype="float64", standardize=False, lr=0.5, batch_size=16, epochs=2,
                             momentum=momentum, weight_decay=weight_decay).fit(data, y, callbacks=[keep])
        runs.append(keep.W)
    assert len(runs[0]) == len(runs[1]) == 16
    for Wa, Wb in zip(*runs):
        assert float((Wa - Wb).abs().max()) < 1e-12


@pytest.mark.parametrize("momentum,weight_decay", [(0.9, 1e-3), (0.0, 0.0)])
def test_divergence_on_sparse_rows_keeps_the_last_finite_parameters(momentum, weight_decay):
    X, y = sparse_problem(n=200)
    X = X * 1e3
    models = []
    for data in (X, X.toarray()):
        m = ln.SoftmaxRegression(solver="sgd", dtype="float64", standardize=False, lr=1e3, batch_size=10, epochs=3,
                                 momentum=momentum, weight_decay=weight_decay)
        with pytest.raises(ln.DivergenceError):
            m.fit(data, y)
        models.append(m)
    assert np.isfinite(models[0].coef_).all()
    assert max_diff(models[0].coef_, models[1].coef_) <= 1e-9 * max(1.0, np.abs(models[1].coef_).max())


def test_checkpoint_resume_inside_an_epoch_on_sparse_rows(tmp_path):
    X, y = sparse_problem(n=300)
    kw = dict(solver="sgd", dtype="float64", standardize=False, lr=0.3, batch_size=10, epochs=3, momentum=0.9,
              weight_decay=1e-3)
    whole = ln.SoftmaxRegression(**kw).fit(X, y)

    class Stop(Callback):
        def on_step(self, state, step):
            if state.epoch == 1 and step.step == 17:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ln.SoftmaxRegression(**kw).fit(X, y, checkpoint_dir=tmp_path, checkpoint_every=5, callbacks=[Stop()])
    resumed = ln.SoftmaxRegression(**kw).fit(X, y, checkpoint_dir=tmp_path, checkpoint_every=5, resume=True)
    assert resumed.resumed_from_ is not None
    assert max_diff(resumed.coef_, whole.coef_) < 1e-10          # to rounding (rows caught up at the checkpoint)


def test_standardize_on_sparse_rows_scales_without_centring():
    X, y = sparse_problem(n=300)
    X = X @ sp.diags(np.linspace(0.1, 50, X.shape[1]))
    a = ln.SoftmaxRegression(solver="lbfgs", dtype="float64", standardize=True, weight_decay=1e-3).fit(X, y)
    pipe = make_pipeline(StandardScaler(with_mean=False),
                         ln.SoftmaxRegression(solver="lbfgs", dtype="float64", standardize=False, weight_decay=1e-3))
    pipe.fit(X, y)
    assert max_diff(a.predict_proba(X), pipe.predict_proba(X)) < 1e-6
    assert not a.mean_.any()


def test_wide_sparse_data_is_never_densified():
    """2²⁴ features: dense rows would take 64 GiB (1000 × 2²⁴ float32); W is 2²⁴ × 2."""
    rng = np.random.default_rng(0)
    n, d, nnz = 1000, 2**24, 10
    X = sp.csr_matrix((np.ones(n * nnz, np.float32), rng.integers(0, d, n * nnz), np.arange(0, n * nnz + 1, nnz)),
                      shape=(n, d))
    y = rng.integers(0, 2, n)
    m = ln.SoftmaxRegression(solver="sgd", epochs=2, standardize=False, momentum=0.9, weight_decay=1e-4).fit(X, y)
    assert m.coef_.shape == (2, d)
    assert m.predict(X[:5]).shape == (5,)
    assert 0.0 <= m.score(X, y) <= 1.0


def test_memory_hungry_solvers_refuse_wide_sparse_data_with_an_alternative():
    n, d = 50, 2**22
    X = sp.random(n, d, density=1e-5, format="csr", random_state=0, dtype=np.float64)
    with pytest.raises(ln.LinearnetsError, match="lbfgs|sgd"):
        ln.LinearRegression(solver="exact").fit(X, np.arange(n, dtype=float))
    with pytest.raises(ln.LinearnetsError, match="newton-cg"):
        ln.SoftmaxRegression(solver="newton").fit(X, np.arange(n) % 2)


def test_sklearn_sparse_checks_pass():
    for est in (ln.SoftmaxRegression(solver="sgd", epochs=3), ln.LinearRegression(solver="exact"),
                ln.LinearRegression(solver="sgd", epochs=3)):
        assert est.__sklearn_tags__().input_tags.sparse
        name = type(est).__name__
        check_estimator_sparse_array(name, est)
        check_estimator_sparse_matrix(name, est)


def test_tfidf_pipeline_on_raw_text():
    rng = np.random.default_rng(0)
    topics = {"sport": "goal match team score league coach player win".split(),
              "space": "orbit rocket planet launch star moon nasa galaxy".split(),
              "food": "recipe cook bake flavor dinner spice oven taste".split()}
    common = "the a of and to in is it that with for on".split()
    docs, labels = [], []
    for _ in range(600):
        topic = rng.choice(list(topics))
        words = list(rng.choice(topics[topic], 4)) + list(rng.choice(common, 8))
        docs.append(" ".join(rng.permutation(words)))
        labels.append(topic)
    for model in (ln.SoftmaxRegression(lr="auto"), ln.SoftmaxRegression(solver="lbfgs")):
        pipe = Pipeline([("tfidf", TfidfVectorizer()), ("model", model)])
        pipe.fit(docs[:500], labels[:500])
        assert pipe.score(docs[500:], labels[500:]) >= 0.95
        assert set(pipe.predict(["the rocket left orbit for the moon"])) == {"space"}
    # the book's constant lr=0.1 also runs on raw text (tf-idf rows have norm 1: it learns slowly)
    pipe = Pipeline([("tfidf", TfidfVectorizer()), ("model", ln.SoftmaxRegression())]).fit(docs, labels)
    assert set(pipe.predict(docs[:50])) <= set(topics)


# --- files and the command line -------------------------------------------------------------------
def run_cli(*args):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "linearnets", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def test_svmlight_files_in_the_api_and_the_cli(tmp_path):
    from sklearn.datasets import dump_svmlight_file
    X, y = sparse_problem(n=600, d=400, k=3)
    dump_svmlight_file(X[:450], y[:450], str(tmp_path / "train.svm"))
    dump_svmlight_file(X[450:, :300], y[450:], str(tmp_path / "test.svm"))         # narrower: its largest index
    ds = ln.data.read_svmlight(tmp_path / "train.svm")
    assert sp.issparse(ds.X) and ds.X.shape == (450, 400) and ds.y.dtype.kind == "i"
    assert max_diff(ds.X.toarray(), X[:450].toarray()) < 1e-12
    r = run_cli("train", "--data", tmp_path / "train.svm", "--solver", "lbfgs", "--weight-decay", "1e-3",
                "--out", tmp_path / "m", "--quiet")
    assert r.returncode == 0, r.stderr
    r = run_cli("evaluate", "--model", tmp_path / "m", "--data", tmp_path / "test.svm", "--json")
    assert r.returncode == 0, r.stderr
    model = ln.load(tmp_path / "m")
    Xtest = sp.hstack([X[450:, :300], sp.csr_matrix((150, 100))]).tocsr()
    assert json.loads(r.stdout)["accuracy"] == pytest.approx(model.score(Xtest, y[450:]), abs=1e-12)
    r = run_cli("predict", "--model", tmp_path / "m", "--input", tmp_path / "test.svm", "--output", tmp_path / "p.csv")
    assert r.returncode == 0, r.stderr
    import pandas as pd
    assert (pd.read_csv(tmp_path / "p.csv")["prediction"].to_numpy() == model.predict(Xtest)).all()


def test_hashed_text_and_categorical_columns_in_the_cli(tmp_path):
    import pandas as pd
    rng = np.random.default_rng(0)
    words = {"sport": "goal match team score league coach".split(), "space": "orbit rocket planet launch moon".split()}
    rows = [{"title": " ".join(rng.choice(words[t], 5)), "venue": rng.choice(["web", "print"]), "pages": int(rng.integers(1, 9)),
             "topic": t} for t in rng.choice(list(words), 400)]
    frame = pd.DataFrame(rows)
    frame.iloc[:300].to_csv(tmp_path / "news.csv", index=False)
    frame.iloc[300:].drop(columns=["topic"]).to_csv(tmp_path / "new.csv", index=False)
    r = run_cli("train", "--data", tmp_path / "news.csv", "--target", "topic", "--hash-features", "1024",
                "--out", tmp_path / "m", "--quiet")
    assert r.returncode == 0, r.stderr
    card = json.loads((tmp_path / "m" / "model.json").read_text())
    assert card["n_features"] == 1024
    spec = card["preprocessing"]["feature_hashing"]
    assert {key: spec[key] for key in ("n_features", "numeric", "categorical", "text")} == {
        "n_features": 1024, "numeric": ["pages"], "categorical": ["venue"], "text": ["title"]}
    pages = frame.iloc[:300]["pages"]
    assert spec["moments"] == [[pytest.approx(pages.mean()), pytest.approx(pages.std(ddof=0))]]
    r = run_cli("predict", "--model", tmp_path / "m", "--input", tmp_path / "new.csv", "--output", tmp_path / "p.csv")
    assert r.returncode == 0, r.stderr
    predicted = pd.read_csv(tmp_path / "p.csv")["prediction"].to_numpy()
    assert (predicted == frame.iloc[300:]["topic"].to_numpy()).mean() >= 0.95
    # the same hashing through the API: the saved model predicts what the CLI wrote
    hashing = ln.data.FeatureHashing.from_card(card["preprocessing"]["feature_hashing"])
    model = ln.load(tmp_path / "m")
    assert (model.predict(hashing.transform(frame.iloc[300:])) == predicted).all()
    r = run_cli("train", "--data", "digits", "--hash-features", "64", "--out", tmp_path / "x", "--quiet")
    assert r.returncode == 2 and "built in" in r.stderr


def test_svmlight_index_base_is_kept_with_the_model(tmp_path):
    """A one-based training file and a later file whose rows happen to use feature 1 (index 0 in
    zero-based terms) are read the same way: the model card keeps the base."""
    (tmp_path / "train.svm").write_text("0 1:1 2:0.5\n1 3:2 4:1\n0 1:0.7 4:0.1\n1 3:1.5\n")
    (tmp_path / "new.svm").write_text("0 3:2\n")
    r = run_cli("train", "--data", tmp_path / "train.svm", "--val-fraction", "0", "--solver", "lbfgs",
                "--out", tmp_path / "m", "--quiet")
    assert r.returncode == 0, r.stderr
    card = json.loads((tmp_path / "m" / "model.json").read_text())
    assert card["preprocessing"]["zero_based"] is False and card["n_features"] == 4
    r = run_cli("predict", "--model", tmp_path / "m", "--input", tmp_path / "new.svm", "--output", "-")
    assert r.returncode == 0, r.stderr
    model = ln.load(tmp_path / "m")
    row = sp.csr_matrix(([2.0], ([0], [2])), shape=(1, 4))       # "3:2", one-based → column 2
    assert r.stdout.splitlines()[1] == str(model.predict(row)[0])


# --- svmlight shards, streamed --------------------------------------------------------------------
def with_first_column(X, value):
    """X with column 0 set to ``value`` in every row."""
    X = X.tolil()
    X[:, 0] = value
    return X.tocsr()


def svmlight_folder(tmp_path, X, y, parts=3, zero_based=False):
    from sklearn.datasets import dump_svmlight_file
    folder = tmp_path / "shards"
    folder.mkdir()
    for i, rows in enumerate(np.array_split(np.arange(X.shape[0]), parts)):
        dump_svmlight_file(X[rows], y[rows], str(folder / f"part{i}.svm"), zero_based=zero_based)
    return folder


@pytest.mark.parametrize("zero_based", [False, True])
def test_streamed_svmlight_shards_read_back_the_rows(tmp_path, zero_based):
    X, y = sparse_problem(n=1100, d=300)
    X = with_first_column(X, 1.0)                                   # column 0 used: the base is unambiguous
    folder = svmlight_folder(tmp_path, X, y, zero_based=zero_based)
    shards = ln.data.open_shards(folder, block_rows=100)
    assert (shards.n, shards.d, shards.zero_based) == (1100, 300, zero_based)
    assert shards.labels().tolist() == sorted(set(y.tolist()))
    for block_rows in (1, 77, 256, 1000):                          # blocks across the index's granules
        back = sp.vstack([b[0] for b in shards.blocks(block_rows)])
        assert max_diff(back.toarray(), X.toarray()) < 1e-12
        assert (np.concatenate([b[1] for b in shards.blocks(block_rows)]) == y).all()
    train, val = shards.split(0.2, seed=3)
    assert train.n + val.n == 1100 and abs(val.n - 220) <= 100


def test_streamed_svmlight_training_equals_in_memory_training(tmp_path):
    """One window holding every row: the epoch's order is the in-memory one, so the models agree."""
    X, y = sparse_problem(n=900, d=250)
    X = with_first_column(X, 0.5)
    shards = ln.data.open_shards(svmlight_folder(tmp_path, X, y), buffer_rows=10**6, block_rows=64)
    for kw in (dict(solver="sgd", momentum=0.9, weight_decay=1e-3, epochs=3, batch_size=32, lr=0.5),
               dict(solver="lbfgs", weight_decay=1e-2)):
        a = ln.SoftmaxRegression(dtype="float64", standardize=True, **kw).fit(shards)
        b = ln.SoftmaxRegression(dtype="float64", standardize=True, **kw).fit(X, y)
        assert max_diff(a.coef_, b.coef_) < 1e-10
        assert a.score(shards) == b.score(X, y)
        assert max_diff(a.predict_proba(shards), b.predict_proba(X)) < 1e-10
    small = ln.data.open_shards(shards.paths[0].parent, buffer_rows=128, block_rows=32)   # windows of 128 rows
    m = ln.SoftmaxRegression(solver="sgd", epochs=5, lr="auto").fit(small)
    assert m.score(X, y) > 0.6


def test_streamed_svmlight_files_that_are_not_one_row_per_line(tmp_path):
    (tmp_path / "a.svm").write_text("1 1:1\n# a comment\n0 2:1\n")
    with pytest.raises(ln.LinearnetsError, match="one row per line"):
        ln.data.open_shards(tmp_path / "a.svm")
    (tmp_path / "b.svm").write_text("1 1:1 x\n")
    with pytest.raises(ln.LinearnetsError, match="svmlight"):
        ln.data.open_shards(tmp_path / "b.svm")
    (tmp_path / "c.svm").write_text("1 1:1\n0 9:1\n")
    with pytest.raises(ln.LinearnetsError, match="beyond the model's 4 features"):
        ln.data.open_shards(tmp_path / "c.svm", n_features=4, zero_based=False)


def test_cli_streams_a_folder_of_svmlight_files(tmp_path):
    X, y = sparse_problem(n=600, d=200)
    X = with_first_column(X, 1.0)
    folder = svmlight_folder(tmp_path, X, y)
    r = run_cli("train", "--data", folder, "--out", tmp_path / "m", "--quiet", "--epochs", "3")
    assert r.returncode == 0, r.stderr
    card = json.loads((tmp_path / "m" / "model.json").read_text())
    assert card["n_features"] == 200 and card["preprocessing"]["zero_based"] is False
    streamed = run_cli("evaluate", "--model", tmp_path / "m", "--data", folder, "--json")
    whole = run_cli("evaluate", "--model", tmp_path / "m", "--data", folder / "part1.svm", "--json")
    part1 = run_cli("evaluate", "--model", tmp_path / "m", "--data", folder / "part1.svm", "--stream", "--json")
    assert streamed.returncode == whole.returncode == part1.returncode == 0, streamed.stderr + whole.stderr
    model = ln.load(tmp_path / "m")
    assert json.loads(streamed.stdout)["accuracy"] == pytest.approx(model.score(X, y), abs=1e-12)
    assert json.loads(whole.stdout)["accuracy"] == json.loads(part1.stdout)["accuracy"]


def test_bad_sparse_inputs_give_one_clear_error(tmp_path):
    import pandas as pd
    (tmp_path / "train.svm").write_text("0 1:1 2:0.5\n1 3:2 4:1\n0 1:0.7 4:0.1\n1 3:1.5\n")
    r = run_cli("train", "--data", tmp_path / "train.svm", "--val-fraction", "0", "--solver", "lbfgs",
                "--out", tmp_path / "m", "--quiet")
    assert r.returncode == 0, r.stderr
    (tmp_path / "zero.svm").write_text("0 0:1 2:1\n")                    # index 0 for a one-based model
    (tmp_path / "wide.svm").write_text("0 9:1\n")
    for name, fragment in (("zero.svm", "feature index 0"), ("wide.svm", "beyond the model's 4 features")):
        r = run_cli("predict", "--model", tmp_path / "m", "--input", tmp_path / name, "--output", "-")
        assert r.returncode == 2 and fragment in r.stderr and "Traceback" not in r.stderr, r.stderr
    frame = pd.DataFrame({"title": ["a rocket", "the goal", "moon orbit", "a match"], "topic": [0, 1, 0, 1]})
    frame.to_csv(tmp_path / "news.csv", index=False)
    r = run_cli("train", "--data", tmp_path / "news.csv", "--target", "topic", "--hash-features", "64",
                "--val-fraction", "0", "--out", tmp_path / "h", "--quiet")
    assert r.returncode == 0, r.stderr
    frame.drop(columns=["title"]).assign(other=1).to_csv(tmp_path / "lacking.csv", index=False)
    r = run_cli("predict", "--model", tmp_path / "h", "--input", tmp_path / "lacking.csv", "--output", "-")
    assert r.returncode == 2 and "'title'" in r.stderr and "Traceback" not in r.stderr, r.stderr
    folder = tmp_path / "shards"
    folder.mkdir()
    (folder / "a.svm").write_text("0 1:1\n1 2:1\n")
    r = run_cli("train", "--data", folder, "--hash-features", "64", "--out", tmp_path / "x", "--quiet")
    assert r.returncode == 2 and "streamed shards" in r.stderr, r.stderr
    card = json.loads((tmp_path / "h" / "model.json").read_text())
    for bad in ({"feature_hashing": {**card["preprocessing"]["feature_hashing"], "n_features": 32}},
                {"zero_based": "yes"}, ["not", "an", "object"]):
        card["preprocessing"] = bad
        (tmp_path / "h" / "model.json").write_text(json.dumps(card))
        with pytest.raises(ln.ModelFileError):
            ln.load(tmp_path / "h")


def test_compiled_steps_without_a_writable_cache(monkeypatch):
    """numba cannot cache beside a read-only install ("no locator available"): the loops are then
    compiled per process instead of failing every sparse fit."""
    import numba  # noqa: PLC0415 — the test patches what linearnets.kernels imports

    from linearnets import kernels
    real = numba.njit

    def njit(*args, **kw):
        if kw.get("cache"):
            raise RuntimeError("cannot cache function '_forward': no locator available")
        return real(*args, **kw)

    monkeypatch.setattr(numba, "njit", njit)
    monkeypatch.setattr(kernels, "_COMPILED", {})
    monkeypatch.delenv("LINEARNETS_NUMBA", raising=False)
    assert kernels.kernels() is not None
    X, y = sparse_problem(n=60, d=30)
    a = ln.SoftmaxRegression(solver="sgd", dtype="float64", lr=0.5, batch_size=8, epochs=2).fit(X, y)
    b = ln.SoftmaxRegression(solver="sgd", dtype="float64", lr=0.5, batch_size=8, epochs=2).fit(X.toarray(), y)
    assert max_diff(a.coef_, b.coef_) < 1e-10


@pytest.mark.parametrize("col", [13, -1])
def test_column_indices_outside_the_width_are_refused(col):
    """scipy builds a CSR from arrays without checking its column indices; the compiled steps index
    W with them (a crash beyond d, the wrong feature below 0): every entry point refuses such a matrix."""
    X = sp.csr_matrix((np.ones(3, np.float32), np.array([1, col, 2]), np.array([0, 1, 2, 3])), shape=(3, 10))
    fitted = ln.SoftmaxRegression(solver="sgd", batch_size=2).fit(sp.random(4, 10, density=0.5, format="csr",
                                                                              random_state=0), [0, 1, 0, 1])
    calls = (lambda: ln.SoftmaxRegression(solver="sgd", batch_size=2).fit(X, [0, 1, 0]),
             lambda: ln.SoftmaxRegression(solver="sgd", batch_size=2).partial_fit(X, [0, 1, 0], classes=[0, 1]),
             lambda: fitted.predict(X))
    for call in calls:
        with pytest.raises(ln.DataError, match="malformed sparse matrix"):
            call()


def test_feature_hashing_in_python():
    import pandas as pd
    frame = pd.DataFrame({"n": [1.5, 0.0, 2.0], "cat": ["a", "b", None], "text": ["Red apple red", "", "green"]})
    hashing = ln.data.FeatureHashing.learn(frame, 2**10)
    assert (hashing.numeric, hashing.categorical, hashing.text) == (("n",), ("cat",), ("text",))
    X = hashing.transform(frame)
    assert sp.issparse(X) and X.shape == (3, 1024)
    # row 0: n, cat=a, text:red (count 2), text:apple | row 1: n, cat=b | row 2: n, text:green
    assert (X[0].nnz, X[1].nnz, X[2].nnz) == (4, 2, 2)
    z = (np.array([1.5, 0.0, 2.0]) - 7 / 6) / np.array([1.5, 0.0, 2.0]).std()    # n, standardised
    assert sorted(np.abs(X[0].data).tolist()) == pytest.approx(sorted([abs(z[0]), 1.0, 1.0, 2.0]))
    again = ln.data.FeatureHashing.from_card(hashing.to_card()).transform(frame)
    assert (again != X).nnz == 0
    with pytest.raises(ln.DataError, match="numeric column 'n'"):
        hashing.transform(frame.assign(n=[1.0, np.nan, 2.0]))


# --- what an adversarial review found (each a regression test) ---------------------------------------
def test_categorical_values_hash_as_written_in_every_file(tmp_path):
    """A zip column is text in the training file ("unknown" among the codes) but all digits in a
    later one: "02139" must hash as "02139" in both, so the predictions on the same rows agree."""
    import pandas as pd
    rng = np.random.default_rng(0)
    zips = rng.choice(["02139", "10001", "94105"], 200)
    y = (zips == "02139").astype(int)
    lines = ["zip,y"] + [f"{z},{t}" for z, t in zip(zips, y)] + ["unknown,0"]
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "known.csv").write_text("zip\n" + "\n".join(zips) + "\n")
    r = run_cli("train", "--data", tmp_path / "train.csv", "--target", "y", "--hash-features", "256", "--solver",
                "lbfgs", "--val-fraction", "0", "--out", tmp_path / "m", "--quiet")
    assert r.returncode == 0, r.stderr
    r = run_cli("predict", "--model", tmp_path / "m", "--input", tmp_path / "known.csv", "--output", tmp_path / "p.csv")
    assert r.returncode == 0, r.stderr
    assert (pd.read_csv(tmp_path / "p.csv")["prediction"].to_numpy() == y).all()


def test_hashed_numeric_columns_do_not_drown_the_rest(tmp_path):
    import pandas as pd
    rng = np.random.default_rng(1)
    topic = rng.choice(["a", "b"], 400)
    words = np.where(topic == "a", "orbit rocket moon", "goal match team")
    pd.DataFrame({"title": words, "code": rng.integers(100, 103, 400), "topic": topic}).to_csv(tmp_path / "t.csv",
                                                                                             index=False)
    r = run_cli("train", "--data", tmp_path / "t.csv", "--target", "topic", "--hash-features", "1024",
                "--out", tmp_path / "m", "--quiet")                    # the CLI's defaults: sgd, lr=auto
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "m" / "metrics.json").read_text())["val"]["accuracy"] >= 0.95


def test_a_wide_standardised_model_saves_and_loads(tmp_path):
    """The standardisation of 2²² features lives in model.safetensors, not as JSON lists in the card."""
    rng = np.random.default_rng(0)
    n, d = 200, 2**22
    X = sp.csr_matrix((rng.random(n * 5), rng.integers(0, d, n * 5), np.arange(0, n * 5 + 1, 5)), shape=(n, d))
    y = rng.integers(0, 2, n)
    m = ln.SoftmaxRegression(solver="sgd", epochs=1, standardize=True).fit(X, y)
    m.save(tmp_path / "m")
    assert (tmp_path / "m" / "model.json").stat().st_size < 100_000
    back = ln.load(tmp_path / "m")
    assert max_diff(back.predict_proba(X), m.predict_proba(X)) == 0.0
    assert max_diff(back.scale_, m.scale_) == 0.0


def test_runs_too_big_for_memory_are_refused_before_allocating(monkeypatch):
    monkeypatch.setenv("LINEARNETS_MEMORY_BUDGET", str(200 << 20))
    X = sp.csr_matrix((np.ones(3), ([0, 1, 2], [5, 2**23, 2**24 - 1])), shape=(3, 2**24))
    for solver in ("sgd", "lbfgs", "newton-cg", "gd"):
        with pytest.raises(ln.ConfigError, match="copies of W"):
            ln.SoftmaxRegression(solver=solver).fit(X, [0, 1, 2])


def test_streamed_labels_must_be_finite_and_representable(tmp_path):
    (tmp_path / "big.svm").write_text("1e20 1:1\n0 2:1\n")
    (tmp_path / "nan.svm").write_text("nan 1:1\n0 2:1\n")
    big = ln.data.open_shards(tmp_path / "big.svm")
    assert big.labels().dtype.kind == "f" and 1e20 in big.labels().tolist()
    with pytest.raises(ln.DataError, match="NaN or infinite label"):
        ln.data.open_shards(tmp_path / "nan.svm")
    (tmp_path / "blank.svm").write_text("1 1:1\n0 2:1\n\n\n")          # blank lines at the end: no rows
    shards = ln.data.open_shards(tmp_path / "blank.svm")
    assert shards.n == 2 and sum(b[0].shape[0] for b in shards.blocks(1)) == 2


def test_odd_sparse_inputs(tmp_path):
    X, y = sparse_problem(n=60, d=20)
    ref = ln.SoftmaxRegression(solver="lbfgs").fit(X.astype(np.float32), y)
    t = torch.from_numpy(X.toarray())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        bf16 = t.to(torch.bfloat16).to_sparse_csr()
        bsr = t.to_sparse_bsr((2, 2))
    m = ln.SoftmaxRegression(solver="lbfgs").fit(bf16, y)
    assert m.coef_.shape == ref.coef_.shape
    with pytest.raises(ln.DataError, match="to_sparse_csr"):
        ln.SoftmaxRegression().fit(bsr, y)
    with pytest.raises(ln.DataError, match="dense array"):
        ln.LinearRegression().fit(X, sp.csr_matrix(y[:, None].astype(float)))
    pd_frame = __import__("pandas").DataFrame({"t": ["a b", "c d"], "y": [0, 1]})
    pd_frame.to_csv(tmp_path / "t.csv", index=False)
    r = run_cli("train", "--data", tmp_path / "t.csv", "--target", "y", "--hash-features", "0", "--out", tmp_path / "m")
    assert r.returncode == 2 and "[1, 2^28]" in r.stderr, r.stderr


def test_the_sparse_step_benchmark_measures_every_setting(capsys):
    from linearnets.bench import sparse as bench
    out = bench.steps(widths=(10, 12), n=3000, nnz=5, k=3)
    assert set(out["ratios"]) == {"plain", "momentum 0.9, weight decay 1e-5"}
    assert len(out["steps_ms"]) == 4 and all(v > 0 for v in out["steps_ms"].values())
    assert "step time at d = 2^12 / at 2^10" in capsys.readouterr().out
