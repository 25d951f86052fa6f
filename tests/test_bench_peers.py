"""linearnets bench peers on tiny data: the sparse generator, the harness and its report.
Vowpal Wabbit and Snap ML are optional (the bench extra); their parts skip when not installed."""

import sys

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import SGDClassifier

from linearnets import cli
from linearnets.bench import BENCHMARKS, peers
from linearnets.data.synthetic import text_like


def tiny_sparse(n=3000, seed=0):
    w = peers.sparse_workload(n, d=2 ** 12, nnz=20, k=5, seed=seed)
    w.settings["linearnets"].update(lr=4.0, batch_size=32, epochs=5)
    return w


def tiny_dense(n=2000):
    w = peers.dense_workload(n, n_test=500)
    w.settings["linearnets"]["epochs"] = 5
    return w


def test_text_like_is_text_like():
    X, y = text_like(4000, d=2 ** 12, nnz=20, k=5, seed=3)
    assert sp.isspmatrix_csr(X) and X.dtype == np.float32 and X.shape == (4000, 2 ** 12)
    assert X.has_canonical_format                                             # sorted, no duplicates
    assert 18 <= X.nnz / X.shape[0] <= 22                                     # ~nnz distinct words per row
    np.testing.assert_allclose(sp.linalg.norm(X, axis=1), 1.0, rtol=1e-5)   # rows L2-normalised
    assert y.dtype == np.int64 and set(np.unique(y)) == set(range(5))
    assert np.bincount(y).min() > 0.5 * len(y) / 5                           # classes balanced
    df = np.sort(np.bincount(X.indices, minlength=X.shape[1]))[::-1]          # document frequencies
    assert df[0] > 0.9 * X.shape[0] and np.median(df) < 0.01 * X.shape[0]    # Zipf: a few words everywhere
    X2, y2 = text_like(4000, d=2 ** 12, nnz=20, k=5, seed=3)
    assert (X2 != X).nnz == 0 and np.array_equal(y, y2)                      # deterministic
    assert (text_like(4000, d=2 ** 12, nnz=20, k=5, seed=4)[0] != X).nnz > 0


def test_text_like_is_learnable_by_a_linear_model():
    X, y = text_like(4000, d=2 ** 12, nnz=20, k=5, seed=0)
    model = SGDClassifier(loss="log_loss", alpha=1e-4, max_iter=20, tol=None, random_state=0)
    assert model.fit(X[:3000], y[:3000]).score(X[3000:], y[3000:]) > 0.5    # chance is 0.2


def test_registered():
    assert BENCHMARKS["peers"] is peers


def test_harness_sklearn_and_linearnets_on_sparse_rows():
    rep = peers.run_workload(tiny_sparse(), peers=("sklearn", "linearnets"), goal=2.0)
    methods = [r.method for r in rep.results]
    assert methods[:2] == ["scikit-learn SGDClassifier", "scikit-learn LogisticRegression saga"]
    assert methods[-1].startswith("linearnets")
    for r in rep.results[:2]:
        assert 0.2 < r.accuracy <= 1.0 and r.seconds > 0 and r.passes >= 1
        assert r.samples_per_s(3000) > 0
        assert "fit(X, y)" in r.how
    ours = rep.results[-1]
    if rep.trace is None:                                                    # a build without sparse input
        assert ours.note.startswith("not available")
        return
    assert 0.2 < ours.accuracy <= 1.0 and ours.seconds > 0 and 0 < ours.passes <= 5
    seconds = [p[0] for p in rep.trace.points]
    samples = [p[1] for p in rep.trace.points]
    assert seconds == sorted(seconds) and samples == sorted(samples) and samples[0] > 0
    for r in rep.results[:2]:                                                # time to each peer's accuracy
        t = r.lin_seconds
        if t is not None:
            assert any(s == t and a >= r.accuracy for s, _, a in rep.trace.points)
            assert r.ratio == pytest.approx(r.seconds / t)
        else:
            assert rep.trace.best < r.accuracy
    table = rep.table()
    assert table.count("\n") == 1 + len(rep.results) and "saga" in table and "linearnets" in table
    assert rep.verdicts == []                                                # scikit-learn is not a target


def test_dense_time_to_accuracy():
    rep = peers.run_workload(tiny_dense(), peers=("sklearn", "linearnets"), goal=10.0, evals_per_epoch=4,
                             repeats=2)
    ours = rep.results[-1]
    assert rep.trace is not None and len(rep.trace.points) >= 4              # a few evaluations per epoch
    # traced = the estimator's own score, and both runs (same seed) made the same iterates
    assert ours.accuracy == rep.trace.points[-1][2] and ours.note == ""
    assert any(line.startswith("linearnets: test accuracy at each evaluation") for line in rep.info)
    assert rep.trace.time_to(0.0) == rep.trace.points[0][0] > 0
    assert rep.trace.time_to(1.01) is None
    for r in rep.results[:-1]:
        assert r.lin_seconds is None or r.lin_seconds <= ours.seconds
    # linearnets stops once it has every peer's accuracy, or at its epoch budget
    assert rep.trace.best >= max(r.accuracy for r in rep.results[:-1]) or ours.passes == pytest.approx(5)


def test_missing_peers_are_reported_not_fatal(monkeypatch):
    monkeypatch.setitem(sys.modules, "vowpalwabbit", None)                  # import → ImportError
    monkeypatch.setitem(sys.modules, "snapml", None)
    rep = peers.run_workload(tiny_sparse(1500), peers=("vw", "snapml"), goal=2.0)
    assert [r.peer for r in rep.results] == ["Vowpal Wabbit", "Snap ML"]
    assert all(r.accuracy is None and r.note == peers.NOT_INSTALLED for r in rep.results)
    assert [v for _, v in rep.verdicts] == ["not measured (not installed)"] * 2
    assert "not installed" in rep.table()


def test_vw_text_format(tmp_path):
    X, y = text_like(50, d=2 ** 10, nnz=5, k=3, seed=1)
    X = sp.vstack([X, sp.csr_matrix((1, X.shape[1]), dtype=np.float32)]).tocsr()   # an empty row too
    y = np.append(y, 2)
    peers.write_vw(tmp_path / "a.vw", X, y, chunk_rows=7)
    lines = (tmp_path / "a.vw").read_text().splitlines()
    assert len(lines) == 51 and lines[-1] == "3 |f"
    for i in (0, 6, 7, 49):
        row = X[i]
        assert lines[i] == f"{y[i] + 1} |f" + "".join(f" {j}:{v!s}" for j, v in zip(row.indices, row.data))
        values = [np.float32(tok.split(":")[1]) for tok in lines[i].split()[2:]]
        assert np.array_equal(values, row.data)                                # float32 round-trips exactly


def test_vowpal_wabbit_runs_and_is_timed():
    pytest.importorskip("vowpalwabbit")
    rep = peers.run_workload(tiny_sparse(), peers=("vw", "linearnets"), goal=2.0)
    vw = [r for r in rep.results if r.peer == "Vowpal Wabbit"]
    assert [(r.method.split(",")[1].strip(), r.passes) for r in vw] == [
        (variant, p) for variant in ("squared loss", "logistic loss", "plain SGD") for p in (1, 2, 3)]
    assert all(0.0 <= r.accuracy <= 1.0 and r.seconds > 0 for r in vw)
    assert max(r.accuracy for r in vw) > 0.3                                 # it learned (chance 0.2)
    assert [r.passes for r in vw if r.target] == [3, 3, 3]
    assert "--loss_function logistic" in vw[3].how and "--sgd" in vw[6].how
    assert all("--oaa 5" in r.how and "--cache_file train.cache" in r.how for r in vw)
    assert any("cache made" in line for line in rep.info)
    assert len(rep.verdicts) == 3 and all(v.split()[0] in ("met", "not") for _, v in rep.verdicts)


def test_snapml_runs_and_is_timed():
    pytest.importorskip("snapml")
    rep = peers.run_workload(tiny_sparse(), peers=("snapml",), goal=2.0)
    (snap,) = rep.results
    assert snap.peer == "Snap ML" and 0.2 < snap.accuracy <= 1.0 and snap.seconds > 0 and snap.target
    assert "n_jobs=" in snap.how
    assert rep.verdicts == [(rep.verdicts[0][0], "not measured (linearnets did not run on this workload)")]


def test_main_prints_a_table_per_workload(capsys):
    out = peers.main(["--rows", "2000", "--features", "4096", "--dense-rows", "1000",
                      "--peers", "sklearn,linearnets", "--repeats", "1", "--evals-per-epoch", "2"])
    text = capsys.readouterr().out
    assert set(out) == {"dense", "sparse"} and len(out["dense"].workload.y_test) == 500
    assert text.count("| method ") == 2 and "how each was run:" in text
    assert "SGDClassifier(loss='log_loss'" in text and "LogisticRegression(solver='saga'" in text


def test_cli_rows_option(capsys, monkeypatch):
    seen = []
    monkeypatch.setattr(peers, "main", lambda argv: seen.append(argv))
    assert cli.main(["bench", "peers", "--rows", "2000"]) == 0
    assert cli.main(["bench", "peers", "--quick"]) == 0
    assert cli.main(["bench", "peers", "--quick", "--rows", "3000"]) == 0
    assert seen == [["--rows", "2000"], ["--rows", "50000", "--repeats", "1"],
                    ["--rows", "50000", "--repeats", "1", "--rows", "3000"]]
    assert cli.main(["bench", "sgd", "--rows", "2000"]) == 2                 # --rows is the peers' option
    assert cli.main(["bench", "peers", "--rows", "0"]) == 2
    assert "--rows" in capsys.readouterr().err
