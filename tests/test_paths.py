"""Every path that can produce a model or a number produces the same one.

One table: the same data fitted along every path — the estimator on arrays, on NPY shards, on
Parquet shards, ``simulate_ranks=2``, two torchrun ranks, and the CLI — for SGD (momentum +
weight decay), exact, newton and lbfgs. Parameters agree (float64 ≤ 1e-10, float32 ≤ 1e-5
relative), and so do the metrics that ``score``, ``history_``, ``linearnets evaluate --json`` and
``metrics.json`` report (same definitions, ≤ 1e-6).

SGD's sample order is part of its result: arrays, NPY, Parquet and the CLI share one order (a
stream whose shuffle window holds every row draws the in-memory permutation); two ranks and
``simulate_ranks=2`` share another. Full-batch solvers do not depend on the order: every path
must give the same optimum.
"""

import contextlib
import io
import json
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from helpers import relerr

import linearnets as ln
from linearnets import cli

# name → (estimator class, settings, data); each case is fitted along every path
# every case standardises its features (the CLI's default): learned in one pass over arrays or shards
CASES = {
    "sgd": (ln.SoftmaxRegression, dict(solver="sgd", lr=0.3, batch_size=64, epochs=3, momentum=0.9,
                                       weight_decay=1e-3, dtype="float64", standardize=True), "digits"),
    "sgd32": (ln.SoftmaxRegression, dict(solver="sgd", lr=0.3, batch_size=64, epochs=3, momentum=0.9,
                                         weight_decay=1e-3, dtype="float32", standardize=True), "digits"),
    "exact": (ln.LinearRegression, dict(solver="exact", weight_decay=1e-2, standardize=True), "diabetes"),
    "newton": (ln.SoftmaxRegression, dict(solver="newton", weight_decay=1e-2, epochs=30, tol=1e-10,
                                          standardize=True), "digits"),
    "lbfgs": (ln.SoftmaxRegression, dict(solver="lbfgs", weight_decay=1e-2, epochs=300, tol=1e-10,
                                         standardize=True), "digits"),
}
TOL = {"float64": 1e-10, "float32": 1e-5}
FLAGS = {"lr": "--lr", "batch_size": "--batch-size", "epochs": "--epochs", "momentum": "--momentum",
         "weight_decay": "--weight-decay", "dtype": "--dtype", "solver": "--solver", "tol": "--tol"}


def rows(name):
    X, y = (ln.data.load_digits() if name == "digits" else ln.data.load_diabetes())
    return X.astype(np.float64), y.astype(np.float64)          # labels as the file holds them


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Each dataset as one NPY file (the CLI's input), NPY shards and Parquet shards."""
    out = {}
    for name in ("digits", "diabetes"):
        X, y = rows(name)
        A = np.column_stack([X, y])
        root = tmp_path_factory.mktemp(name)
        np.save(root / "all.npy", A)
        (root / "npy").mkdir()
        (root / "pq").mkdir()
        cols = [f"x{j}" for j in range(X.shape[1])] + ["y"]
        for i, part in enumerate(np.array_split(A, 3)):
            np.save(root / "npy" / f"part{i}.npy", part)
            pd.DataFrame(part, columns=cols).to_parquet(root / "pq" / f"part{i}.parquet", row_group_size=250)
        out[name] = root
    return out


def cli_json(*args):
    """Run the CLI in this process; (exit status, stdout)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        status = cli.main([str(a) for a in args])
    return status, buf.getvalue()


def fit_cli(cls, settings, root, out):
    args = ["train", "--model", "softmax" if cls is ln.SoftmaxRegression else "linear", "--data", root / "all.npy",
            "--val-fraction", 0, "--out", out, "--quiet"]
    for key, value in settings.items():
        if key != "standardize":                                  # the CLI standardises by default
            args += [FLAGS[key], value]
    status, _ = cli_json(*args)
    assert status == 0
    return ln.load(out), json.loads((out / "metrics.json").read_text())


TORCHRUN_WORKER = textwrap.dedent("""
    import json, sys
    import numpy as np
    import linearnets as ln
    from linearnets.distributed import init_from_env
    cases, out = json.loads(sys.argv[1]), sys.argv[2]
    comm = init_from_env("cpu")
    for name, (cls, settings, folder) in cases.items():
        model = getattr(ln, cls)(**settings).fit(ln.data.open_shards(folder), comm=comm)
        metrics = model.evaluate(ln.data.open_shards(folder), comm=comm)
        if comm.rank == 0:
            np.savez(f"{out}/{name}.npz", coef=model.coef_, intercept=model.intercept_)
            with open(f"{out}/{name}.json", "w") as f:
                json.dump({"history": list(model.history_), "metrics": metrics}, f)
    comm.close()
""")


@pytest.fixture(scope="module")
def torchrun(files, tmp_path_factory):
    """Every case fitted once by two gloo ranks streaming NPY shards (one torchrun launch)."""
    out = tmp_path_factory.mktemp("torchrun")
    script = out / "worker.py"
    script.write_text(TORCHRUN_WORKER)
    cases = {name: (cls.__name__, settings, str(files[data] / "npy")) for name, (cls, settings, data) in CASES.items()}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                        "--master-addr", "127.0.0.1", "--master-port", str(port), str(script),
                        json.dumps(cases), str(out)], capture_output=True, text=True, timeout=600,
                       env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert p.returncode == 0, p.stderr[-3000:]
    return out


def params_of(model):
    """coef_ and intercept_; softmax intercepts centred: adding a constant to every class's
    intercept changes no probability, so only the centred intercepts are identified."""
    b = np.ravel(model.intercept_)
    if isinstance(model, ln.SoftmaxRegression):
        b = b - b.mean()
    return np.concatenate([np.ravel(model.coef_), b])


def assert_same_history(a, b, tol=1e-6):
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        for key in ("loss", "accuracy"):
            if key in ra or key in rb:
                assert ra[key] == pytest.approx(rb[key], rel=tol, abs=tol), (key, ra, rb)


def assert_same_metrics(a: dict, b: dict, tol=1e-6):
    assert set(a) == set(b), (a, b)
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=tol, abs=tol), (key, a, b)


@pytest.mark.parametrize("case", list(CASES))
def test_every_path_gives_the_same_model_and_numbers(case, files, torchrun, tmp_path):
    cls, settings, data = CASES[case]
    root = files[data]
    X, y = rows(data)
    tol = TOL[settings.get("dtype", "float64")]
    minibatch = settings["solver"] == "sgd"

    arrays = cls(**settings).fit(X, y)
    npy = cls(**settings).fit(ln.data.open_shards(root / "npy"))
    parquet = cls(**settings).fit(ln.data.open_shards(root / "pq", target="y"))
    simulated = cls(**settings).fit(X, y, simulate_ranks=2)
    via_cli, metrics_json = fit_cli(cls, settings, root, tmp_path / "cli")
    ranks = np.load(torchrun / f"{case}.npz")
    ranks_json = json.loads((torchrun / f"{case}.json").read_text())

    # parameters: one order (arrays, shards, CLI); the two-rank order (torchrun, simulated)
    ref = params_of(arrays)
    for model in (npy, parquet, via_cli):
        assert relerr(params_of(model), ref) <= tol
    b = np.ravel(ranks["intercept"])
    two = np.concatenate([np.ravel(ranks["coef"]), b - b.mean() if cls is ln.SoftmaxRegression else b])
    assert relerr(two, params_of(simulated)) <= tol
    if not minibatch:                                    # the optimum does not depend on the order
        assert relerr(two, ref) <= tol and relerr(params_of(simulated), ref) <= tol

    # history_: the same records along the paths of one order
    for model in (npy, parquet, via_cli):
        assert_same_history(model.history_ if model is not via_cli else metrics_json["history"], arrays.history_)
    assert_same_history(ranks_json["history"], simulated.history_)

    # the metrics: score, evaluate (arrays, shards), `linearnets evaluate --json`, metrics.json
    m = arrays.evaluate(X, y)
    assert arrays.score(X, y) == m["accuracy" if cls is ln.SoftmaxRegression else "r2"]
    status, out = cli_json("evaluate", "--model", tmp_path / "cli", "--data", root / "all.npy", "--json")
    assert status == 0
    evaluated = json.loads(out)
    assert evaluated.pop("rows") == f"all {len(y)} rows of all"             # it says what it scored
    for other in (npy.evaluate(ln.data.open_shards(root / "npy")),
                  parquet.evaluate(ln.data.open_shards(root / "pq", target="y")),
                  evaluated, metrics_json["train"]):
        assert_same_metrics(other, m)
    assert_same_metrics(ranks_json["metrics"], simulated.evaluate(X, y))
    if not minibatch:                                    # and the last epoch's loss is the metric's loss
        assert arrays.history_[-1]["loss"] == pytest.approx(m["loss"], rel=1e-6)
