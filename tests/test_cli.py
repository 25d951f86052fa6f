"""The command line, run as a user would: real subprocesses, exit codes, files written."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import linearnets as ln


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "linearnets", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = [l for l in result.stderr.splitlines() if "error:" in l]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def test_train_evaluate_predict_softmax(tmp_path):
    out = tmp_path / "run"
    r = run("train", "--model", "softmax", "--data", "digits", "--solver", "sgd", "--epochs", "10", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "epoch 10/10 loss" in r.stderr                                 # not a terminal: one line per epoch
    for f in ("model.safetensors", "model.json", "metrics.json", "curves.png"):
        assert (out / f).stat().st_size > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["history"]) == 10 and "accuracy" in metrics["history"][0]
    r = run("evaluate", "--model", out, "--data", "digits")
    assert r.returncode == 0 and "accuracy=" in r.stdout
    r = run("evaluate", "--model", out, "--data", "digits", "--json")
    assert json.loads(r.stdout)["accuracy"] > 0.8
    X, _ = ln.data.load_digits()
    pd.DataFrame(X[:7], columns=[f"pixel_{i}" for i in range(64)]).to_csv(tmp_path / "x.csv", index=False)
    r = run("predict", "--model", out, "--input", tmp_path / "x.csv", "--output", tmp_path / "p.csv", "--proba")
    assert r.returncode == 0, r.stderr
    preds = pd.read_csv(tmp_path / "p.csv")
    assert len(preds) == 7 and "p_9" in preds.columns


def test_train_linear_exact_and_file_data(tmp_path):
    r = run("train", "--model", "linear", "--data", "diabetes", "--solver", "exact", "--out", tmp_path / "lin")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "lin" / "curves.png").exists()
    r = run("evaluate", "--model", tmp_path / "lin", "--data", "diabetes", "--json")
    assert "r2" in json.loads(r.stdout)
    df = pd.DataFrame(np.random.default_rng(0).standard_normal((200, 3)), columns=["a", "b", "c"])
    df["y"] = 2 * df.a - df.b + 0.5
    for fmt in ("csv", "parquet", "npy"):
        path = tmp_path / f"data.{fmt}"
        {"csv": lambda: df.to_csv(path, index=False), "parquet": lambda: df.to_parquet(path),
         "npy": lambda: np.save(path, df.to_numpy())}[fmt]()
        target = "y" if fmt != "npy" else "3"
        r = run("train", "--model", "linear", "--data", path, "--target", target, "--out", tmp_path / fmt, "--quiet")
        assert r.returncode == 0, r.stderr
        card = json.loads((tmp_path / fmt / "model.json").read_text())
        assert card["n_features"] == 3


def test_divergence_through_cli(tmp_path):
    out = tmp_path / "div"
    r = run("train", "--model", "linear", "--data", "synthetic-regression", "--solver", "sgd", "--lr", "10",
            "--out", out)
    assert_one_line_error(r, "lr=10", "smaller learning rate")
    assert not out.exists()                                              # nothing half-written


@pytest.fixture
def bad_files(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.standard_normal((40, 3)), columns=["a", "b", "c"])
    df["y"] = rng.integers(0, 2, 40)
    files = {}
    nan = df.copy(); nan.loc[3, "a"] = np.nan; nan.to_csv(tmp_path / "nan.csv", index=False); files["nan"] = "nan.csv"
    inf = df.copy(); inf.loc[3, "b"] = np.inf; inf.to_csv(tmp_path / "inf.csv", index=False); files["inf"] = "inf.csv"
    txt = df.copy(); txt["b"] = "word"; txt.to_csv(tmp_path / "text.csv", index=False); files["text"] = "text.csv"
    (tmp_path / "empty.csv").write_text("a,b,c,y\n"); files["empty"] = "empty.csv"
    soft = pd.DataFrame(rng.standard_normal((5, 2)), columns=["a", "b"])
    soft.to_csv(tmp_path / "soft.csv", index=False)
    return tmp_path, files


@pytest.mark.parametrize("case,fragment", [("nan", "NaN"), ("inf", "infinity"), ("text", "not numeric"),
                                           ("empty", "no rows")])
def test_bad_data_one_line_exit_2(bad_files, case, fragment):
    folder, files = bad_files
    out = folder / f"out-{case}"
    r = run("train", "--model", "softmax", "--data", folder / files[case], "--target", "y", "--out", out, "--quiet")
    assert_one_line_error(r, fragment)
    assert not out.exists()


def test_other_errors(tmp_path):
    assert_one_line_error(run("train", "--data", "nosuch", "--out", tmp_path / "o"), "nosuch")
    assert_one_line_error(run("evaluate", "--model", tmp_path / "none", "--data", "digits"), "not found")
    run("train", "--model", "linear", "--data", "diabetes", "--out", tmp_path / "lin", "--quiet")
    assert_one_line_error(run("evaluate", "--model", tmp_path / "lin", "--data", "digits"), "feature")
    assert_one_line_error(run("train", "--model", "softmax", "--data", "diabetes", "--out", tmp_path / "s"),
                          "continuous")
    assert_one_line_error(run("train", "--data", "digits", "--lr", "-1", "--out", tmp_path / "s"),
                          "Invalid learning rate")
    r = run("--debug", "evaluate", "--model", tmp_path / "none", "--data", "digits")
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_data_commands(tmp_path, monkeypatch):
    monkeypatch.setenv("LINEARNETS_DATA", str(tmp_path))
    r = run("data", "list")
    assert r.returncode == 0 and "digits" in r.stdout and "fashion-mnist" in r.stdout
    r = run("data", "verify", "mnist")
    assert_one_line_error(r, "missing or corrupt")


@pytest.mark.benchmark
def test_bench_quick_runs():
    r = run("bench", "--quick")
    assert r.returncode == 0, r.stderr
    for section in ("== sgd ==", "== exact ==", "== optimum ==", "× floor", "× bare", "× scikit-learn"):
        assert section in r.stdout


def test_bench_unknown_name():
    assert_one_line_error(run("bench", "nope"), "unknown benchmark")
