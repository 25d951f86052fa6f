"""Good models by default, and honest when they are not: the CLI's defaults on real data, lr="auto",
convergence warnings, the closed form's condition estimate, sample and class weights, standardize,
warm_start and fit_intercept."""

import contextlib
import io
import json
import warnings

import numpy as np
import pandas as pd
import pytest
from helpers import relerr
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import linearnets as ln
from linearnets import autolr, cli
from linearnets.solvers import SolverConfig, learning_rate


def run_cli(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main([str(a) for a in args])
    return status, out.getvalue(), err.getvalue()


# --- 1. the CLI's defaults on real data ----------------------------------------------------------------
def test_the_readmes_first_command_and_raw_wine_reach_095(tmp_path):
    status, out, err = run_cli("train", "--model", "softmax", "--data", "digits", "--solver", "sgd", "--epochs", 10,
                               "--out", tmp_path / "digits", "--quiet")
    assert status == 0, err
    metrics = json.loads((tmp_path / "digits" / "metrics.json").read_text())
    assert metrics["val"]["accuracy"] >= 0.95 and metrics["standardize"] is True and metrics["lr"] > 0
    race = metrics["lr_race"]                                                  # what the race tried, recorded
    assert f"lr=auto: the best of {len(race['tried'])} rates raced on {metrics['n_train']} rows" in out   # and said
    assert metrics["lr"] in [lr for lr, _ in race["tried"]] and race["start"] > 0 and race["rows"] > 0
    annealed = SolverConfig(lr=metrics["lr"], epochs=10, lr_schedule="anneal")
    assert [r["lr"] for r in metrics["history"]] == [learning_rate(annealed, e) for e in range(10)]   # recorded
    wine = load_wine(as_frame=True).frame.rename(columns={"target": "cultivar"})
    wine.to_csv(tmp_path / "wine.csv", index=False)                            # raw: scales 0.1 … 1000
    status, _, err = run_cli("train", "--data", tmp_path / "wine.csv", "--target", "cultivar", "--out",
                             tmp_path / "wine", "--quiet")
    assert status == 0, err
    assert json.loads((tmp_path / "wine" / "metrics.json").read_text())["val"]["accuracy"] >= 0.95


def test_diabetes_with_the_cli_defaults_matches_the_closed_form(tmp_path):
    X, y = ln.data.load_diabetes()
    pd.DataFrame(np.column_stack([X, y])).to_csv(tmp_path / "d.csv", index=False, header=[*map(str, range(10)), "y"])
    for solver in ("exact", "lbfgs", "newton"):
        status, _, err = run_cli("train", "--model", "linear", "--data", tmp_path / "d.csv", "--target", "y",
                                 "--solver", solver, "--val-fraction", 0, "--out", tmp_path / solver, "--quiet")
        assert status == 0, err
    r2 = {s: json.loads((tmp_path / s / "metrics.json").read_text())["train"]["r2"] for s in ("exact", "lbfgs", "newton")}
    closed = ln.LinearRegression().fit(X, y).score(X, y)
    assert all(abs(v - closed) <= 0.01 for v in r2.values()), (r2, closed)


# --- 2. lr="auto" --------------------------------------------------------------------------------------------
def auto_cases():
    X, y = ln.data.load_digits()
    w = load_wine()
    Xr, yr = ln.data.load_diabetes()
    Xs, ys = ln.data.synthetic_regression(n=1000)
    f = ln.data.fashion_mnist_like(n=1500, seed=1)
    return [("digits", ln.SoftmaxRegression, X, y, False), ("digits raw", ln.SoftmaxRegression, X * 16, y, False),
            ("wine", ln.SoftmaxRegression, w.data, w.target, True), ("diabetes", ln.LinearRegression, Xr, yr, False),
            ("synthetic", ln.LinearRegression, Xs, ys, False), ("fashion-like", ln.SoftmaxRegression, f.X, f.y, False)]


@pytest.mark.parametrize("case", auto_cases(), ids=lambda c: c[0])
def test_auto_lr_never_diverges_and_is_recorded(case):
    name, cls, X, y, standardize = case
    for batch in (1, 32, 256, len(y)):
        model = cls(solver="sgd", lr="auto", batch_size=batch, epochs=10 if batch > 1 else 2, standardize=standardize)
        model.fit(X, y)                                                   # a DivergenceError fails the test
        loss = model.evaluate(X, y)["loss"]
        assert np.isfinite(loss) and model.history_[-1]["loss"] < model.history_[0]["loss"] * 1.5
        annealed = SolverConfig(lr=model.lr_, epochs=model.n_iter_, lr_schedule="anneal")
        assert model.lr_ > 0 and [r["lr"] for r in model.history_] == [learning_rate(annealed, e)
                                                                         for e in range(model.n_iter_)]


def test_a_diverging_lr_names_the_curvature_rules_value():
    X, y = ln.data.synthetic_regression(n=1000)
    with pytest.raises(ln.DivergenceError, match=r"the curvature rule gives 0\.\d+ for this data"):
        ln.LinearRegression(solver="sgd", lr=10, batch_size=10).fit(X, y)


def grid_losses(cls, X, y, batch, standardize, rates, **kw):
    out = []
    for lr in rates:
        try:
            m = cls(solver="sgd", lr=float(lr), batch_size=batch, epochs=10, standardize=standardize, dtype="float64",
                    **kw).fit(X, y)
            out.append(m.evaluate(X, y)["loss"])
        except ln.DivergenceError:
            out.append(np.inf)
    return np.array(out)


AUTO_CELLS = [("digits /16", 256, False), ("digits standardised", "full", True), ("wine", 32, True),
              ("wine", "full", True), ("diabetes", 32, False)]


@pytest.mark.parametrize("name,batch,standardize", AUTO_CELLS)
def test_auto_is_within_1_5_times_the_best_constant_rate_of_a_grid(name, batch, standardize):
    """Acceptance 2 on the cells that are quick (the whole table: benchmarks/autolr_table.py)."""
    cls, (X, y) = ((ln.LinearRegression, ln.data.load_diabetes()) if name == "diabetes" else
                   (ln.SoftmaxRegression, load_wine(return_X_y=True) if name == "wine" else ln.data.load_digits()))
    batch = len(y) if batch == "full" else batch
    auto = cls(solver="sgd", lr="auto", batch_size=batch, epochs=10, standardize=standardize, dtype="float64").fit(X, y)
    F_auto = auto.evaluate(X, y)["loss"]
    best = grid_losses(cls, X, y, batch, standardize, np.logspace(-4, 2, 12)).min()
    assert F_auto <= 1.5 * best, (auto.lr_, F_auto, best)
    # the curvature rule alone, constant: what auto was before the race — worse on these cells
    rule = cls(solver="sgd", lr="curvature", batch_size=batch, epochs=10, standardize=standardize,
               dtype="float64").fit(X, y)
    assert rule.lr_ == auto.lr_race_.start and {r["lr"] for r in rule.history_} == {rule.lr_}


def test_the_race_on_a_small_training_set_is_the_fit():
    """Up to RACE_ROWS rows the racers train on the training set itself, with the run's settings: the
    winner's run is the fit, to the last bit, and the winner is the lowest of those tried."""
    X, y = ln.data.load_digits()
    m = ln.SoftmaxRegression(solver="sgd", lr="auto", batch_size=64, epochs=5, dtype="float64").fit(X, y)
    race = m.lr_race_
    assert not race.held_out and race.rows == len(y)
    tried = dict(race.tried)
    assert tried[m.lr_] == min(tried.values()) == m.evaluate(X, y)["loss"]
    assert {lr / race.start for lr in tried} >= {0.5, 1.0, 2.0}
    again = ln.SoftmaxRegression(solver="sgd", lr=m.lr_, lr_schedule="anneal", batch_size=64, epochs=5,
                                 dtype="float64").fit(X, y)
    np.testing.assert_array_equal(again.coef_, m.coef_)


def test_on_many_rows_the_race_scores_on_held_out_rows(monkeypatch):
    """Past RACE_ROWS each racer trains on SAMPLE_ROWS rows and is scored on as many others: the rate that
    drives a separable sample's loss to 0 would be far too large for all the rows."""
    monkeypatch.setattr(autolr, "RACE_ROWS", 1000)
    monkeypatch.setattr(autolr, "SAMPLE_ROWS", 600)
    f = ln.data.fashion_mnist_like(n=3000, seed=0)
    m = ln.SoftmaxRegression(solver="sgd", lr="auto", batch_size=32, epochs=5, dtype="float64").fit(f.X, f.y)
    assert m.lr_race_.held_out and m.lr_race_.rows == 600
    assert np.isfinite(m.evaluate(f.X, f.y)["loss"]) and m.lr_ == min(m.lr_race_.tried, key=lambda t: t[1])[0]


def test_the_race_runs_the_fits_own_steps_with_simulated_ranks_and_is_scored_held_out_past_its_step_cap():
    X, y = ln.data.load_digits()
    m = ln.SoftmaxRegression(solver="sgd", lr="auto", batch_size=16, epochs=2, dtype="float64").fit(
        X, y, simulate_ranks=2)                                  # racers step on the 2 × 16 interleaved rows
    tried = dict(m.lr_race_.tried)
    assert tried[m.lr_] == min(tried.values()) and abs(tried[m.lr_] - m.evaluate(X, y)["loss"]) <= 1e-12



def test_a_racer_past_its_step_cap_runs_fewer_epochs_on_every_row(monkeypatch):
    monkeypatch.setattr(autolr, "RACE_STEPS", 2000)
    X, y = ln.data.load_digits()
    capped = ln.SoftmaxRegression(solver="sgd", lr="auto", batch_size=1, epochs=10).fit(X[:600], y[:600])
    race = capped.lr_race_                                   # 10 epochs × 600 steps > 2000: 3 epochs, all rows
    assert (race.epochs, race.rows, race.held_out) == (3, 600, False) and capped.n_iter_ == 10


def test_the_race_samples_sorted_shards_across_the_files_and_weighted_rows_where_the_weight_is(tmp_path,
                                                                                                monkeypatch):
    monkeypatch.setattr(autolr, "RACE_ROWS", 2000)
    monkeypatch.setattr(autolr, "SAMPLE_ROWS", 800)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6000, 10))
    y = np.argmax(X @ rng.standard_normal((10, 3)) + rng.standard_normal((6000, 3)), 1)
    order = np.argsort(y, kind="stable")                      # the files sorted by class: the first 2 000 rows,
    for i in range(3):                                        # all of class 0
        np.save(tmp_path / f"part{i}.npy", np.c_[X[order], y[order]][i * 2000:(i + 1) * 2000])
    loss = {}
    for lr in ("auto", "curvature"):
        m = ln.SoftmaxRegression(lr=lr, epochs=5, dtype="float64").fit(ln.data.open_shards(tmp_path))
        loss[lr] = m.evaluate(X, y)["loss"]
    assert m.lr_race_ is None and loss["auto"] <= 1.05 * loss["curvature"], loss
    w = np.zeros(6000)
    w[[5, 4000]] = 1.0                                        # two rows of weight: the race keeps the rule
    auto = ln.SoftmaxRegression(lr="auto", epochs=3).fit(X, y, sample_weight=w)
    assert np.isfinite(auto.evaluate(X, y, sample_weight=w)["loss"])


def test_races_with_weight_decay_early_stopping_and_refits():
    X, y = ln.data.load_digits()
    m = ln.SoftmaxRegression(solver="sgd", lr="auto", weight_decay=1.0, epochs=3, standardize=True).fit(X, y)
    assert all(lr * 1.0 < 2 or F == np.inf for lr, F in m.lr_race_.tried) and m.lr_ * 1.0 < 2   # no ConfigError
    early = ln.SoftmaxRegression(solver="sgd", lr="auto", epochs=30, early_stopping=True).fit(X, y)
    rule = ln.SoftmaxRegression(solver="sgd", lr="curvature", epochs=30).fit(X, y)   # (on all rows: ~ the same)
    assert early.lr_race_ is None and abs(early.lr_ / rule.lr_ - 1) < 0.05 and {r["lr"] for r in early.history_} == {
        early.lr_}
    m.set_params(lr=0.05).fit(X, y)
    assert m.lr_ == 0.05 and m.lr_race_ is None                                   # nothing stale
    after = ln.SoftmaxRegression(solver="sgd", lr="auto", epochs=3).fit(X, y)
    after.partial_fit(X, y)                                   # goes on at the schedule's last rate, not the peak
    assert after.history_[-1]["lr"] == after.history_[-2]["lr"] < after.lr_


def test_gd_with_auto_takes_the_rule_and_can_resume_with_more_epochs(tmp_path):
    X, y = ln.data.load_digits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)                  # 5 and 8 iterations: short of tol
        ln.SoftmaxRegression(solver="gd", lr="auto", epochs=5).fit(X, y, checkpoint_dir=tmp_path)
        m = ln.SoftmaxRegression(solver="gd", lr="auto", epochs=8).fit(X, y, checkpoint_dir=tmp_path, resume=True)
    assert m.resumed_from_ and m.n_iter_ == 8 and m.lr_race_ is None


def test_partial_fit_and_curvature_keep_the_rule_and_a_constant_rate():
    X, y = ln.data.load_digits()
    fitted = ln.SoftmaxRegression(solver="sgd", lr="curvature", epochs=3).fit(X, y)
    assert fitted.lr_race_ is None and [r["lr"] for r in fitted.history_] == [fitted.lr_] * 3
    online = ln.SoftmaxRegression(solver="sgd", lr="auto", epochs=3)
    for _ in range(4):
        online.partial_fit(X, y, classes=np.unique(y))
    assert online.lr_ == fitted.lr_ and [r["lr"] for r in online.history_] == [fitted.lr_] * 4
    with pytest.raises(ln.ConfigError, match="learning rate: 'fast'.*'auto' or 'curvature'"):
        ln.SoftmaxRegression(lr="fast").fit(X, y)


# --- 3. convergence warnings --------------------------------------------------------------------------------
STANDARD = {"digits": ln.data.load_digits, "wine": lambda: load_wine(return_X_y=True),
            "breast_cancer": lambda: load_breast_cancer(return_X_y=True)}


@pytest.mark.parametrize("solver", ["gd", "newton", "newton-cg", "lbfgs"])
def test_a_solver_stopped_at_its_limit_warns(solver):
    X, y = ln.data.load_digits()
    with pytest.warns(ConvergenceWarning, match=rf"{solver} reached its iteration limit \(epochs=3\).*max\|∇F\|"):
        ln.SoftmaxRegression(solver=solver, epochs=3, standardize=True).fit(X, y)


@pytest.mark.parametrize("solver", ["newton", "newton-cg", "lbfgs"])
@pytest.mark.parametrize("data", list(STANDARD))
def test_the_defaults_converge_on_standard_problems_without_warning(solver, data):
    X, y = STANDARD[data]()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        m = ln.SoftmaxRegression(solver=solver, standardize=True, weight_decay=1e-4).fit(X, y)
    assert m.history_[-1].get("converged")
    Xr, yr = ln.data.load_diabetes()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        r = ln.LinearRegression(solver=solver, standardize=True).fit(Xr, yr)
    assert r.history_[-1].get("converged")


def test_float32_without_progress_stops_and_says_so():
    X, y = ln.data.load_digits()
    with pytest.warns(ConvergenceWarning, match="no longer lower the loss in float32"):
        m = ln.SoftmaxRegression(solver="lbfgs", dtype="float32", weight_decay=1e-3, tol=1e-12, epochs=20000,
                                 standardize=True).fit(X, y)
    losses = [r["loss"] for r in m.history_]
    best = int(np.argmin(losses))
    improved = max(i for i in range(1, len(losses)) if losses[i] < losses[i - 1] - 1e-6 * abs(losses[i - 1]))
    assert len(losses) - improved <= 50 and m.n_iter_ < 1000, (len(losses), improved, best)
    assert m.history_[-1].get("stalled") and not m.history_[-1].get("converged")


# --- 4. the closed form's condition estimate ---------------------------------------------------------------------
def rotated(cond, n=2000, d=20, seed=0):
    """X = U diag(s) Vᵀ: orthonormal U, V, geometric singular values; cond(XᵀX) = cond."""
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((n, d)))
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))
    X = U @ np.diag(np.geomspace(1, cond ** -0.5, d)) @ V.T
    return X, X @ rng.standard_normal(d) + 1e-3 * rng.standard_normal(n)


@pytest.mark.parametrize("cond,warns", [(1e6, False), (1e8, False), (1e10, True), (1e12, True)])
def test_exact_warns_and_falls_back_by_the_true_condition_number(cond, warns):
    X, y = rotated(cond)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = ln.LinearRegression().fit(X, y)
    fell_back = any(issubclass(w.category, ln.IllConditionedWarning) for w in caught)
    assert fell_back == warns and m.history_[-1]["fallback"] == warns
    ref = np.linalg.lstsq(np.column_stack([X, np.ones(len(y))]), y, rcond=None)[0]
    assert relerr(m.coef_, ref[:-1]) < (1e-6 if cond <= 1e10 else 1e-3)


# --- 5. weights ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("solver,tol", [("exact", 1e-10), ("newton", 1e-8), ("newton-cg", 1e-8), ("lbfgs", 1e-8)])
def test_integer_weights_equal_repeated_rows(solver, tol):
    X, y = ln.data.load_digits()
    X, y = X[:400], y[:400]
    w = np.random.default_rng(0).integers(0, 4, len(y))
    if solver == "exact":
        Xr, yr = ln.data.load_diabetes()
        X, w = Xr[:400], w[:400]
        yr = yr[:400]
        a = ln.LinearRegression().fit(X, yr, sample_weight=w)
        b = ln.LinearRegression().fit(np.repeat(X, w, 0), np.repeat(yr, w))
        c = ln.LinearRegression().fit(X, yr, sample_weight=w * 7.5)        # rescaled weights: the same fit
        d = ln.LinearRegression().fit(X[w > 0], yr[w > 0], sample_weight=w[w > 0])   # weight 0 = removed
    else:
        kw = dict(solver=solver, weight_decay=1e-3, tol=1e-11, epochs=500)
        a = ln.SoftmaxRegression(**kw).fit(X, y, sample_weight=w)
        b = ln.SoftmaxRegression(**kw).fit(np.repeat(X, w, 0), np.repeat(y, w))
        c = ln.SoftmaxRegression(**kw).fit(X, y, sample_weight=w * 7.5)
        d = ln.SoftmaxRegression(**kw).fit(X[w > 0], y[w > 0], sample_weight=w[w > 0])
    for other in (b, c, d):
        assert relerr(a.coef_, other.coef_) < tol


def test_weighted_optima_match_scikit_learn():
    X, y = ln.data.load_digits()
    w = np.random.default_rng(2).uniform(0.1, 3, len(y))
    lam = 1e-3
    ours = ln.SoftmaxRegression(solver="newton", weight_decay=lam, tol=1e-12).fit(X, y, sample_weight=w)
    sk = LogisticRegression(C=1 / (lam * w.sum()), tol=1e-12, max_iter=10000).fit(X, y, sample_weight=w)
    assert relerr(ours.coef_, sk.coef_) < 1e-5
    Xr, yr = ln.data.load_diabetes()
    wr = np.random.default_rng(3).uniform(0.1, 3, len(yr))
    ridge = Ridge(alpha=0.5).fit(Xr, yr, sample_weight=wr)
    mine = ln.LinearRegression(weight_decay=0.5 / wr.sum()).fit(Xr, yr, sample_weight=wr)
    assert relerr(mine.coef_, ridge.coef_) < 1e-10 and abs(mine.intercept_ - ridge.intercept_) < 1e-8


def test_class_weight_balanced_matches_scikit_learn():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    lam = 1e-2
    ours = ln.SoftmaxRegression(solver="newton", class_weight="balanced", weight_decay=lam, tol=1e-12).fit(X, y)
    counts = np.bincount(y)
    total = (len(y) / (2 * counts))[y].sum()
    # softmax with 2 classes: v = w₁ − w₀ is logistic regression's coefficient vector, and at the optimum
    # w₁ = −w₀ = v/2, so (λ/2)(‖w₀‖² + ‖w₁‖²) = (λ/4)‖v‖²: C = 2 / (λ Σ w)
    sk = LogisticRegression(class_weight="balanced", C=2 / (lam * total), tol=1e-12, max_iter=10000).fit(X, y)
    assert relerr(ours.coef_[1] - ours.coef_[0], sk.coef_[0]) < 1e-5
    d = ln.SoftmaxRegression(solver="newton", class_weight={0: 2.0, 1: 0.5}, weight_decay=lam).fit(X, y)
    e = ln.SoftmaxRegression(solver="newton", weight_decay=lam).fit(X, y, sample_weight=np.where(y == 0, 2.0, 0.5))
    assert relerr(d.coef_, e.coef_) < 1e-10


def test_streamed_weights_equal_in_memory_weights(tmp_path):
    X, y = ln.data.load_digits()
    w = np.random.default_rng(4).integers(1, 4, len(y)).astype(float)
    frame = pd.DataFrame(X, columns=[f"p{i}" for i in range(64)])
    frame["y"], frame["w"] = y, w
    frame.to_parquet(tmp_path / "d.parquet", row_group_size=500)
    np.save(tmp_path / "d.npy", np.ascontiguousarray(frame.to_numpy()))
    for solver in ("sgd", "lbfgs"):
        kw = dict(solver=solver, weight_decay=1e-3, dtype="float64", batch_size=64, epochs=3 if solver == "sgd" else None)
        a = ln.SoftmaxRegression(**kw).fit(X, y.astype(float), sample_weight=w)
        for shards in (ln.data.open_shards(tmp_path / "d.parquet", target="y", weight="w"),
                       ln.data.open_shards(tmp_path / "d.npy", target=64, weight=65)):
            b = ln.SoftmaxRegression(**kw).fit(shards)
            assert relerr(b.coef_, a.coef_) < 1e-10
            assert b.evaluate(shards)["loss"] == pytest.approx(a.evaluate(X, y.astype(float), w)["loss"], rel=1e-9)
    Xr, yr = ln.data.load_diabetes()
    wr = w[:len(yr)]
    e = ln.LinearRegression().fit(Xr, yr, sample_weight=wr)
    pd.DataFrame(np.column_stack([Xr, yr, wr])).to_parquet(tmp_path / "r.parquet")
    f = ln.LinearRegression().fit(ln.data.open_shards(tmp_path / "r.parquet", target="10", weight="11"))
    assert relerr(e.coef_, f.coef_) < 1e-10


def test_weighted_metrics_and_score():
    X, y = ln.data.load_digits()
    w = np.random.default_rng(5).uniform(0, 2, len(y))
    m = ln.SoftmaxRegression(epochs=2).fit(X, y)
    right = m.predict(X) == y
    assert m.score(X, y, sample_weight=w) == pytest.approx((w * right).sum() / w.sum())
    Xr, yr = ln.data.load_diabetes()
    r = ln.LinearRegression().fit(Xr, yr)
    from sklearn.metrics import r2_score
    assert r.score(Xr, yr, sample_weight=w[:len(yr)]) == pytest.approx(r2_score(yr, r.predict(Xr),
                                                                               sample_weight=w[:len(yr)]))


# --- 6. standardize, warm_start, fit_intercept -----------------------------------------------------------------------
@pytest.mark.parametrize("solver", ["sgd", "lbfgs", "exact"])
def test_standardize_equals_a_pipeline_and_survives_saving(tmp_path, solver):
    w = load_wine()
    cls = ln.LinearRegression if solver == "exact" else ln.SoftmaxRegression
    X, y = (w.data[:, 1:], w.data[:, 0]) if solver == "exact" else (w.data, w.target)
    kw = dict(solver=solver, dtype="float64", **({"lr": 0.5, "epochs": 5} if solver == "sgd" else {}))
    ours = cls(standardize=True, **kw).fit(X, y)
    pipe = make_pipeline(StandardScaler(), cls(**kw)).fit(X, y)
    method = "predict" if solver == "exact" else "predict_proba"
    np.testing.assert_allclose(getattr(ours, method)(X), getattr(pipe, method)(X), rtol=1e-6, atol=1e-9)
    # coef_ and intercept_ in the original units: the raw features give the same outputs
    Z = X @ np.atleast_2d(ours.coef_).T + ours.intercept_
    np.testing.assert_allclose(np.squeeze(Z), np.squeeze(ours._decision(X)), rtol=1e-9, atol=1e-9)
    ours.save(tmp_path / "m")
    again = ln.load(tmp_path / "m")
    np.testing.assert_array_equal(getattr(again, method)(X), getattr(ours, method)(X))
    assert np.array_equal(again.mean_, ours.mean_) and np.array_equal(again.scale_, ours.scale_)


def test_unscaled_features_warn_sgd_once():
    w = load_wine()
    with pytest.warns(ln.ScaleWarning, match="standardize=True"):
        ln.SoftmaxRegression(epochs=1).fit(w.data, w.target)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ln.ScaleWarning)
        ln.SoftmaxRegression(epochs=1, standardize=True).fit(w.data, w.target)


def test_warm_start_continues_and_fit_intercept_false():
    X, y = ln.data.load_digits()
    cold = ln.SoftmaxRegression(solver="lbfgs", epochs=5, warm_start=True, standardize=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cold.fit(X, y)
        first = cold.evaluate(X, y)["loss"]
        cold.fit(X, y)                                                # starts from the fitted coefficients
    assert cold.evaluate(X, y)["loss"] < first
    Xr, yr = ln.data.load_diabetes()
    for solver in ("exact", "lbfgs", "newton", "sgd"):
        m = ln.LinearRegression(solver=solver, fit_intercept=False, **({"lr": 0.5, "epochs": 50} if solver == "sgd"
                                                                        else {})).fit(Xr, yr)
        assert m.intercept_ == 0.0
    ref = np.linalg.lstsq(Xr, yr, rcond=None)[0]
    assert relerr(ln.LinearRegression(fit_intercept=False).fit(Xr, yr).coef_, ref) < 1e-10
    assert relerr(ln.LinearRegression(solver="newton", fit_intercept=False, tol=1e-10).fit(Xr, yr).coef_, ref) < 1e-8


# --- 7. the CLI's small things ------------------------------------------------------------------------------------------
def test_cli_version_help_logs_and_metrics_csv(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.strip() == f"linearnets {ln.__version__}"
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = capsys.readouterr().out.split("options:")[1]
    for flag in ("--lr", "--batch-size", "--epochs", "--weight-decay", "--momentum", "--tol", "--seed",
                 "--val-fraction", "--shuffle-buffer", "--no-standardize", "--solver"):
        line = text[text.index(flag):].split("\n  -")[0]
        assert "default" in line, flag
    status, out, err = run_cli("train", "--data", "digits", "--epochs", 3, "--out", tmp_path / "o")
    assert status == 0 and [line.split()[:2] for line in err.splitlines() if line.startswith("epoch")] == \
        [["epoch", "1/3"], ["epoch", "2/3"], ["epoch", "3/3"]]
    csv = pd.read_csv(tmp_path / "o" / "metrics.csv")
    assert list(csv["epoch"]) == [1, 2, 3] and {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(csv.columns)
    status, out, err = run_cli("evaluate", "--model", tmp_path / "o", "--data", "digits", "--json")
    assert json.loads(out)["rows"] == "all 1797 rows of digits"
    status, out, err = run_cli("data", "verify", "mnist", "--root", tmp_path / "none")
    assert status == 2 and out.split()[0] == "missing"
