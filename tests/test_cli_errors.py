"""Every CLI error path, through a real subprocess: one line naming the problem and the fix,
exit status 2, no traceback — and no output left behind."""

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

import linearnets as ln
from linearnets.data import idx


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    t = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.standard_normal((40, 3)), columns=["a", "b", "c"])
    df["y"] = rng.integers(0, 2, 40)
    df.to_csv(t / "ok.csv", index=False)
    nan = df.copy()
    nan.loc[2, "a"] = np.nan
    nan.to_csv(t / "nan.csv", index=False)
    (t / "notes.txt").write_text("hello")
    np.save(t / "flat.npy", np.arange(10.0))
    df[["a", "b"]].to_csv(t / "narrow.csv", index=False)
    X, y = ln.data.load_digits()
    ln.SoftmaxRegression(epochs=1).fit(df[["a", "b", "c"]], df["y"]).save(t / "clf")
    ln.LinearRegression().fit(df[["a", "b", "c"]], df["y"].astype(float)).save(t / "reg")
    (t / "badcard").mkdir()
    ln.SoftmaxRegression(epochs=1).fit(X, y).save(t / "badcard")
    (t / "badcard" / "model.json").write_text("{not json")
    data = t / "data" / "fashion-mnist"
    data.mkdir(parents=True)
    for prefix in ("train", "t10k"):
        idx.write_idx(data / f"{prefix}-images-idx3-ubyte.gz", np.zeros((5, 28, 28), np.uint8))
        idx.write_idx(data / f"{prefix}-labels-idx1-ubyte.gz", np.zeros(5, np.uint8))
    raw = (data / "train-images-idx3-ubyte.gz").read_bytes()
    import gzip
    (data / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(gzip.decompress(raw)[:-100]))
    return t


CASES = {
    "unknown dataset": (["train", "--data", "nosuch", "--out", "{out}"], "neither a built-in dataset"),
    "unsupported file": (["train", "--data", "{t}/notes.txt", "--out", "{out}"], "unsupported file type"),
    "NaN in data": (["train", "--data", "{t}/nan.csv", "--target", "y", "--out", "{out}"], "NaN"),
    "missing column": (["train", "--data", "{t}/ok.csv", "--target", "nope", "--out", "{out}"], "no column 'nope'"),
    "1-D npy": (["train", "--data", "{t}/flat.npy", "--out", "{out}"], "2-D array"),
    "bad learning rate": (["train", "--data", "digits", "--lr", "-1", "--out", "{out}"], "Invalid learning rate: -1"),
    "unknown solver": (["train", "--data", "digits", "--solver", "adam", "--out", "{out}"], "unknown solver 'adam'"),
    "unknown loss": (["train", "--data", "digits", "--loss", "hinge", "--out", "{out}"], "unknown loss 'hinge'"),
    "no GPU": (["train", "--data", "digits", "--device", "cuda", "--out", "{out}"], "no CUDA GPU"),
    "half precision": (["train", "--data", "digits", "--dtype", "float16", "--out", "{out}"], "half precision"),
    "softmax on regression": (["train", "--model", "softmax", "--data", "diabetes", "--out", "{out}"], "continuous"),
    "closed form for softmax": (["train", "--data", "digits", "--solver", "exact", "--out", "{out}"], "closed form"),
    "bad validation fraction": (["train", "--data", "digits", "--val-fraction", "1.5", "--out", "{out}"], "--val-fraction"),
    "divergence": (["train", "--model", "linear", "--data", "synthetic-regression", "--solver", "sgd",
                    "--lr", "10", "--out", "{out}"], "lr=10"),
    "truncated IDX": (["train", "--data", "fashion-mnist", "--out", "{out}"], "truncated"),
    "model not found": (["evaluate", "--model", "{t}/none", "--data", "digits"], "not found"),
    "corrupt card": (["evaluate", "--model", "{t}/badcard", "--data", "digits"], "not valid JSON"),
    "evaluate wrong width": (["evaluate", "--model", "{t}/reg", "--data", "digits"], "feature"),
    "predict missing input": (["predict", "--model", "{t}/clf", "--input", "{t}/none.csv", "--output", "{out}.csv"], "no such file"),
    "predict wrong width": (["predict", "--model", "{t}/clf", "--input", "{t}/narrow.csv", "--output", "{out}.csv"], "feature"),
    "proba of a regressor": (["predict", "--model", "{t}/reg", "--input", "{t}/ok.csv", "--output", "{out}.csv", "--proba"], "--proba needs a softmax model"),
    "verify missing data": (["data", "verify", "mnist"], "missing or corrupt"),
    "unknown claim": (["lab", "--only", "C12", "--out", "{out}"], "unknown claim"),
    "unknown benchmark": (["bench", "nope"], "unknown benchmark"),
}


def _run(args, env):
    return subprocess.run([sys.executable, "-m", "linearnets", *args], capture_output=True, text=True,
                          timeout=300, env=env)


def test_every_error_path(files, tmp_path):
    env = dict(os.environ, LINEARNETS_DATA=str(files / "data"))
    jobs = {}
    with ThreadPoolExecutor(max_workers=3) as pool:
        for name, (args, _) in CASES.items():
            out = tmp_path / name.replace(" ", "_")
            argv = [a.format(t=files, out=out) for a in args]
            jobs[name] = (out, pool.submit(_run, argv, env))
    failures = []
    for name, (out, job) in jobs.items():
        r = job.result()
        lines = [l for l in r.stderr.splitlines() if "error:" in l]
        fragment = CASES[name][1]
        ok = (r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr
              and fragment in lines[0] and not out.exists() and not out.with_suffix(".csv").exists())
        if not ok:
            failures.append(f"{name}: rc={r.returncode} stderr={r.stderr[-300:]!r}")
    assert failures == []


def test_debug_shows_the_traceback(files):
    r = _run(["--debug", "evaluate", "--model", str(files / "none"), "--data", "digits"], dict(os.environ))
    assert r.returncode != 0 and "Traceback" in r.stderr
