"""The command line fuzzed: random subcommands, flags and values, paths to good and hostile files.
Whatever is asked, the answer is exit 0 or exit 2 with one line — never a traceback, never an
"internal error", and a failed run leaves no output behind. The default run tries 120 command lines;
``-m slow`` tries 1200 (HYPOTHESIS_CASES overrides both)."""

import contextlib
import io
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import linearnets as ln
from linearnets import cli

DEFAULT = int(os.environ.get("HYPOTHESIS_CASES", 120))
SLOW = int(os.environ.get("HYPOTHESIS_CASES", 1200))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    t = tmp_path_factory.mktemp("fuzz")
    X, y = ln.data.load_digits()
    df = pd.DataFrame(X[:200], columns=[f"pixel_{i}" for i in range(64)])
    df["label"] = y[:200]
    df.to_csv(t / "good.csv", index=False)
    df.to_parquet(t / "good.parquet")
    np.save(t / "good.npy", df.to_numpy())
    (t / "shards").mkdir()
    for i, part in enumerate(np.array_split(df.to_numpy(), 3)):
        np.save(t / "shards" / f"p{i}.npy", part)
    df.drop(columns="label").to_csv(t / "features.csv", index=False)
    np.savetxt(t / "noheader.csv", X[:20], delimiter=",")
    nan = df.copy()
    nan.iloc[3, 5] = np.nan
    nan.to_csv(t / "nan.csv", index=False)
    (t / "text.csv").write_text("a,b,label\nx,1,0\ny,2,1\n")
    (t / "garbage.npy").write_bytes(b"\x93NUMPY\x01\x00garbage")
    (t / "empty.csv").write_text("")
    np.save(t / "timedelta.npy", np.arange(10).astype("timedelta64[s]").reshape(5, 2))
    np.save(t / "huge.npy", np.full((20, 3), 1e300))
    (t / "dir").mkdir()
    (t / "file").write_text("a file")
    ln.SoftmaxRegression(epochs=1).fit(df.drop(columns="label"), df["label"]).save(t / "model")
    ln.LinearRegression().fit(*ln.data.load_diabetes()).save(t / "linear")
    shutil.copytree(t / "model", t / "badmodel")
    (t / "badmodel" / "model.json").write_text('{"format": "linearnets-model", "n_features": 1e400}')
    return t


PATHS = ["good.csv", "good.parquet", "good.npy", "shards", "features.csv", "noheader.csv", "nan.csv", "text.csv",
         "garbage.npy", "empty.csv", "timedelta.npy", "huge.npy", "dir", "file", "missing.csv", "model", "linear",
         "badmodel", "file/sub"]
DATASETS = ["digits", "diabetes", "synthetic-regression", "nosuch", "mnist"]
NUMBERS = st.sampled_from(["0.1", "1", "0.5", "3", "2", "64"] * 3 + ["0", "-1", "1e300", "-1e300", "nan", "inf",
                                                                     "1e-320", "2.5", "abc", "", "10000000000"])
SMALL = st.sampled_from(["1", "2"] * 4 + ["0", "-3", "x", "1.5"])


def flags(files: Path):
    weighted = lambda good, bad: st.sampled_from(good * 3 + bad)          # noqa: E731  (valid inputs more often)
    model = weighted(["model", "model", "linear"], ["badmodel", "good.csv", "dir", "missing.csv", "file"]).map(
        lambda p: str(files / p))
    out = weighted(["out", "out"], ["file", "dir", "file/sub", "good.csv"]).map(lambda p: str(files / p))
    data = weighted([str(files / p) for p in ("good.csv", "good.parquet", "good.npy", "shards")] + ["digits", "diabetes"],
                    [str(files / p) for p in PATHS] + DATASETS)
    common = {"--data": data,
              "--target": st.sampled_from(["label", "label", "0", "-1", "zz", "64"])}
    return {
        "train": {**common, "--model": st.sampled_from(["linear", "softmax", "tree"]),
                  "--solver": st.sampled_from(["sgd", "gd", "exact", "newton-cg", "lbfgs", "adam"]),
                  "--loss": st.sampled_from(["cross_entropy", "mse", "kl", "hinge"]),
                  "--lr": NUMBERS, "--batch-size": NUMBERS, "--epochs": SMALL, "--weight-decay": NUMBERS,
                  "--momentum": NUMBERS, "--lr-schedule": st.sampled_from(["constant", "step", "cosine", "warm"]),
                  "--label-smoothing": NUMBERS, "--tol": NUMBERS, "--val-fraction": NUMBERS, "--seed": NUMBERS,
                  "--device": st.sampled_from(["cpu", "cuda", "auto", "tpu"]),
                  "--dtype": st.sampled_from(["float32", "float64", "float16", "int8"]), "--out": out,
                  "--shuffle-buffer": NUMBERS, "--block-rows": NUMBERS, "--simulate-ranks": SMALL,
                  "--checkpoint-every": SMALL, "--stream": None, "--no-shuffle": None, "--resume": None,
                  "--distributed": None},
        "evaluate": {**common, "--model": model, "--split": st.sampled_from(["train", "test"]), "--json": None,
                     "--stream": None},
        "predict": {"--model": model, "--input": weighted([str(files / "features.csv"), str(files / "noheader.csv")],
                                                          [str(files / p) for p in PATHS]), "--output": st.one_of(out, st.sampled_from(["-", "p.txt"])).map(
            lambda p: p if p in ("-", "p.txt") else p + st_suffix(p)), "--proba": None,
                    "--keep": st.sampled_from(["pixel_0", "label", "0", "nope"]), "--no-header": None},
    }


def st_suffix(p: str) -> str:
    return "" if p.endswith(".csv") else ".csv"


@st.composite
def command_lines(draw, files):
    table = flags(files)
    sub = draw(st.sampled_from(sorted(table)))
    chosen = draw(st.lists(st.sampled_from(sorted(table[sub])), max_size=5, unique=True))
    required = {"train": ["--data", "--out"], "evaluate": ["--model", "--data"], "predict": ["--model", "--input", "--output"]}
    if draw(st.integers(0, 9)):                               # mostly complete commands, sometimes not
        chosen = list(dict.fromkeys(required[sub] + chosen))
    argv = [sub]
    for flag in chosen:
        value = table[sub][flag]
        argv += [flag] if value is None else [flag, draw(value)]
    if sub == "train" and "--epochs" not in chosen:
        argv += ["--epochs", "2"]                             # the fuzz is about inputs, not long runs
    return argv


def invoke(argv):
    err = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            status = cli.main(argv)
        except SystemExit as e:                              # argparse: a usage error, exit 2
            status = e.code
    return status, err.getvalue()


def check(files: Path, argv):
    out = Path(argv[argv.index("--out") + 1]) if "--out" in argv else None
    existed = out is not None and out.exists()
    before = sorted(p.name for p in files.iterdir())
    status, err = invoke(argv)
    assert status in (0, 2), (argv, status, err[-2000:])
    assert "Traceback" not in err and "internal error" not in err, (argv, err[-2000:])
    if status == 2:                                          # one error line (argparse adds its usage above it)
        assert len([line for line in err.splitlines() if "error:" in line]) == 1, (argv, err)
    if status != 0 and out is not None and not existed:
        assert not out.exists(), (argv, "a failed run left its output folder")
    left = [p for p in sorted(p.name for p in files.iterdir()) if p not in before and p.startswith(".")]
    assert left == [], (argv, left)
    if out is not None and out.exists() and out.name == "out":
        shutil.rmtree(out)


@pytest.mark.parametrize("cases", [pytest.param(DEFAULT, id="default"),
                                   pytest.param(SLOW, id="slow", marks=pytest.mark.slow)])
def test_cli_fuzz(files, cases):
    @settings(max_examples=cases, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(argv=command_lines(files))
    def run(argv):
        check(files, argv)
    run()
