"""Nothing lost, nothing half-done: full disks, read-only places, kills during a save, two runs on one
folder, data that changed under a checkpoint, hostile files — each ends in one line and exit 2, the
previous model intact, bounded time and memory."""

import contextlib
import errno
import gzip
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

import linearnets as ln
from linearnets import cli

PY = sys.executable
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
ROOT = os.geteuid() == 0 and shutil.which("mount") is not None


def run_cli(*args):
    """The CLI in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main([str(a) for a in args])
    return status, out.getvalue(), err.getvalue()


def one_line(err: str, *fragments):
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in err and "internal error" not in err, err
    for f in fragments:
        assert f in lines[0], lines[0]


def snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def no_temporaries(folder: Path):
    left = [p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}.")]
    assert left == [], left


@pytest.fixture
def old_model(tmp_path):
    """A folder with a trained 64-feature model in it, and its bytes."""
    out = tmp_path / "out"
    status, _, err = run_cli("train", "--data", "digits", "--epochs", 1, "--out", out, "--quiet")
    assert status == 0, err
    return out, snapshot(out)


# --- a full disk, a read-only place, a kill during the save ------------------------------------------
WRITES = ["model.safetensors", "model.json", "metrics.json", "curves.png"]


@pytest.mark.parametrize("victim", WRITES)
def test_a_failing_write_at_any_file_of_a_save_leaves_the_previous_model(old_model, monkeypatch, victim):
    out, before = old_model
    real_open = open

    def failing_open(file, mode="r", *args, **kwargs):
        name = os.path.basename(os.fspath(file)) if isinstance(file, (str, os.PathLike)) else ""
        if "w" in mode and f".{out.name}." in os.fspath(file) and (name == victim or name.startswith(f".{victim}.")):
            raise OSError(errno.ENOSPC, "No space left on device", os.fspath(file))
        return real_open(file, mode, *args, **kwargs)
    monkeypatch.setattr("builtins.open", failing_open)
    monkeypatch.setattr("io.open", failing_open)
    status, _, err = run_cli("train", "--data", "diabetes", "--model", "linear", "--out", out, "--quiet")
    monkeypatch.undo()
    assert status == 2
    one_line(err, str(out), "no space left")
    assert snapshot(out) == before                                     # bitwise the previous model
    assert ln.load(out).n_features_in_ == 64
    no_temporaries(out)


@pytest.fixture
def tmpfs(tmp_path):
    if not ROOT:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode()[:100]}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_real_full_disk_keeps_the_previous_model(tmpfs, tmp_path):
    """The issue's case: a 2 MB file system, an old small model, a new one that does not fit."""
    out = tmpfs / "model"
    X = np.random.default_rng(0).random((30, 3))
    np.save(tmp_path / "small.npy", np.column_stack([X, np.arange(30) % 2]))
    status, _, err = run_cli("train", "--data", tmp_path / "small.npy", "--out", out, "--quiet", "--epochs", 1)
    assert status == 0, err
    before = snapshot(out)
    wide = np.random.default_rng(1).random((20, 60_001)).astype(np.float32)
    wide[:, -1] = np.arange(20) % 10
    np.save(tmp_path / "wide.npy", wide)                      # 60 000 features × 10 classes: 2.4 MB of weights
    status, _, err = run_cli("train", "--data", tmp_path / "wide.npy", "--out", out, "--quiet", "--epochs", 1,
                             "--val-fraction", 0)
    assert status == 2
    one_line(err, "no space left")
    assert snapshot(out) == before and ln.load(out).n_features_in_ == 3
    no_temporaries(out)


def test_a_read_only_place_is_refused_before_training(tmpfs, tmp_path):
    out = tmpfs / "model"
    status, _, err = run_cli("train", "--data", "digits", "--out", out, "--quiet", "--epochs", 1)
    assert status == 0, err
    before = snapshot(out)
    X, _ = ln.data.load_digits()
    np.savetxt(tmp_path / "x.csv", X[:5], delimiter=",")
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    t0 = time.perf_counter()
    status, _, err = run_cli("train", "--data", "synthetic-fashion", "--out", out, "--quiet", "--epochs", 50)
    assert status == 2 and time.perf_counter() - t0 < 5                  # refused at once, not after training
    one_line(err, "read-only")
    assert snapshot(out) == before
    status, _, err = run_cli("predict", "--model", out, "--input", tmp_path / "x.csv", "--output", out / "p.csv")
    assert status == 2
    one_line(err, "read-only")


def test_outputs_are_checked_before_training(tmp_path):
    (tmp_path / "file").write_text("x")
    for bad, fragment in [(tmp_path / "file", "is a file"), (tmp_path / "file" / "sub", "is a file, not a folder")]:
        t0 = time.perf_counter()
        status, _, err = run_cli("train", "--data", "synthetic-fashion", "--epochs", 50, "--out", bad, "--quiet")
        assert status == 2 and time.perf_counter() - t0 < 5
        one_line(err, fragment)
    X, _ = ln.data.load_digits()
    np.savetxt(tmp_path / "x.csv", X[:5], delimiter=",")
    run_cli("train", "--data", "digits", "--epochs", 1, "--out", tmp_path / "m", "--quiet")
    before = (tmp_path / "x.csv").read_bytes()
    status, _, err = run_cli("predict", "--model", tmp_path / "m", "--input", tmp_path / "x.csv",
                             "--output", tmp_path / "x.csv")
    assert status == 2 and (tmp_path / "x.csv").read_bytes() == before
    one_line(err, "input file")
    status, _, err = run_cli("predict", "--model", tmp_path / "m", "--input", tmp_path / "x.csv",
                             "--output", tmp_path / "file" / "p.csv")
    assert status == 2
    one_line(err, "not a folder")


def test_a_kill_during_the_save_leaves_one_whole_model(old_model):
    """SIGKILL the moment the new outputs' temporary folder appears: afterwards the folder holds the
    previous model bitwise, or the new one complete — never neither — and the next run cleans up."""
    out, before = old_model
    outcomes = set()
    for attempt in range(6):
        proc = subprocess.Popen([PY, "-m", "linearnets", "train", "--data", "diabetes", "--model", "linear",
                                 "--out", str(out), "--quiet", "--seed", str(attempt)], env=ENV,
                                stderr=subprocess.DEVNULL)
        while proc.poll() is None:
            if any(p.name.startswith(f".{out.name}.") and p.name.endswith(".tmp") and p.is_dir()
                   for p in out.parent.iterdir()):
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.0005)
        proc.wait()
        model = ln.load(out)                                             # never neither
        now = snapshot(out)
        if now == before:
            outcomes.add("previous")
        else:
            assert set(now) >= {"model.safetensors", "model.json", "metrics.json", "curves.png"}
            assert model.n_features_in_ == 10
            outcomes.add("new")
            break
    status, _, err = run_cli("train", "--data", "diabetes", "--model", "linear", "--out", out, "--quiet")
    assert status == 0, err
    no_temporaries(out)
    assert outcomes


def test_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        run_cli("train", "--data", "digits", "--epochs", 1, "--out", tmp_path / "m", "--quiet")
    finally:
        os.umask(old)
    for p in (tmp_path / "m").iterdir():
        assert p.stat().st_mode & 0o777 == 0o644, p
    assert (tmp_path / "m").stat().st_mode & 0o777 == 0o755


# --- two runs on one folder ----------------------------------------------------------------------------
def test_a_second_run_on_the_same_folder_is_refused_and_a_stale_lock_taken_over(tmp_path):
    out = tmp_path / "run"
    args = [PY, "-m", "linearnets", "train", "--data", "synthetic-fashion", "--epochs", "150", "--out", str(out),
            "--quiet", "--checkpoint-every", "500"]
    first = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lock = tmp_path / ".run.lock"
    t0 = time.time()
    while not (out / "checkpoints").exists():
        assert first.poll() is None and time.time() - t0 < 120, first.communicate()[1]
        time.sleep(0.05)
    t0 = time.time()
    second = subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=60)
    assert second.returncode == 2 and time.time() - t0 < 15             # ~5 s of it is importing torch
    one_line(second.stderr, "in use by another run", f"pid {first.pid}")
    _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err
    assert ln.load(out).n_iter_ == 150 and not lock.exists()
    resumed = subprocess.run(args + ["--resume"], env=ENV, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    # a run killed with SIGKILL leaves its lock file; the next run takes it over
    killed = subprocess.Popen(args, env=ENV, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while not lock.exists():
        assert time.time() - t0 < 60
        time.sleep(0.05)
    killed.kill()
    killed.wait()
    assert lock.exists()
    again = subprocess.run(args[:4] + ["--data", "digits", "--epochs", "1", "--out", str(out), "--quiet"], env=ENV,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    no_temporaries(out)


# --- resume on other data ---------------------------------------------------------------------------------
def test_resume_on_data_differing_in_one_value_is_refused(tmp_path):
    X, y = ln.data.load_digits()
    data = np.column_stack([X, y])
    np.save(tmp_path / "d.npy", data)
    args = ["train", "--data", tmp_path / "d.npy", "--epochs", 2, "--checkpoint-every", 5, "--out",
            tmp_path / "run", "--quiet"]
    assert run_cli(*args)[0] == 0
    data[100, 7] += 1.0
    np.save(tmp_path / "d.npy", data)
    status, _, err = run_cli(*args, "--resume")
    assert status == 2
    one_line(err, "other data", "data:")


# --- hostile files: bounded time and memory ----------------------------------------------------------------
PEAK = ("import atexit, os, sys\n"
        "def peak():\n"
        "    with open('/proc/self/status') as f, open(os.environ['PEAK_FILE'], 'w') as out:\n"
        "        out.write(next(l for l in f if l.startswith('VmHWM')).split()[1])\n"
        "atexit.register(peak)\n"
        "from linearnets.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n")


def measured(args, env, tmp_path):
    """Run the CLI in a fresh process: (exit status, stderr, seconds, peak RSS in MiB of that process —
    its own high-water mark after exec, read from /proc at exit)."""
    peak_file = tmp_path / "peak"
    t0 = time.perf_counter()
    p = subprocess.run([PY, "-c", PEAK, *map(str, args)], env={**env, "PEAK_FILE": str(peak_file)},
                       capture_output=True, text=True, timeout=120)
    return p.returncode, p.stderr, time.perf_counter() - t0, int(peak_file.read_text()) / 1024


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    t = tmp_path_factory.mktemp("hostile")
    files = {}
    # a gzip bomb: a 1 MB IDX file declaring 1 GiB
    mnist = t / "data" / "mnist"
    mnist.mkdir(parents=True)
    header = bytes([0, 0, 8, 3]) + (1024).to_bytes(4, "big") * 3
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)                      # gzip, streamed: 1 GiB of zeros
    zeros = bytes(16 << 20)
    bomb = packer.compress(header) + b"".join(packer.compress(zeros) for _ in range(64)) + packer.flush()
    for prefix in ("train", "t10k"):
        (mnist / f"{prefix}-images-idx3-ubyte.gz").write_bytes(bomb)
        (mnist / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + (1024).to_bytes(4, "big")
                                                                              + bytes(1024)))
    files["bomb"] = (["train", "--data", "mnist", "--out", t / "o-bomb"], "allowed", {"LINEARNETS_DATA": str(t / "data")})
    # a shard of 10 rows × 300 001 columns (24 MB): the closed form of 300 000 features
    (t / "wide").mkdir()
    np.save(t / "wide" / "p.npy", np.random.default_rng(0).random((10, 300_001)))
    files["wide shard"] = (["train", "--model", "linear", "--data", t / "wide", "--val-fraction", 0,
                            "--out", t / "o-wide"], "closed form", {})
    # a shuffle buffer of 10¹⁰ rows over data that needs it all
    (t / "rows").mkdir()
    rows = np.random.default_rng(0).random((60_000, 785)).astype(np.float32)
    rows[:, -1] = np.arange(60_000) % 10
    np.save(t / "rows" / "p.npy", rows)
    files["huge shuffle buffer"] = (["train", "--data", t / "rows", "--shuffle-buffer", 10**10, "--val-fraction", 0,
                                     "--out", t / "o-buf"], "shuffle", {"LINEARNETS_MEMORY_BUDGET": str(64 << 20)})
    # a sparse 64 GB model.safetensors beside a valid card
    X, y = ln.data.load_digits()
    ln.SoftmaxRegression(epochs=1).fit(X, y).save(t / "giant")
    with open(t / "giant" / "model.safetensors", "r+b") as f:
        f.truncate(64 << 30)
    np.savetxt(t / "x.csv", X[:3], delimiter=",")
    files["sparse giant weights"] = (["predict", "--model", t / "giant", "--input", t / "x.csv", "--output",
                                      t / "p.csv"], "bytes", {})
    # a card nested 200 000 deep, and one of 100 MB
    for name, text in [("deep", '{"format": "linearnets-model", "x": ' + "[" * 200_000 + "]" * 200_000 + "}"),
                       ("huge", '{"format": "linearnets-model", "x": "' + "a" * (100 << 20) + '"}')]:
        shutil.copytree(t / "giant", t / name, ignore=shutil.ignore_patterns("model.safetensors"))
        (t / name / "model.safetensors").write_bytes((t / "giant" / "model.json").read_bytes()[:0])
        (t / name / "model.json").write_text(text)
        files[f"{name} card"] = (["evaluate", "--model", t / name, "--data", "digits"], "model card" if name == "huge"
                                 else "levels deep", {})
    return files


@pytest.mark.parametrize("case", ["bomb", "wide shard", "huge shuffle buffer", "sparse giant weights", "deep card",
                                  "huge card"])
def test_hostile_files_end_quickly_in_bounded_memory(hostile, case, tmp_path):
    args, fragment, env = hostile[case]
    status, err, seconds, peak_mib = measured(args, {**ENV, **env}, tmp_path)
    assert status == 2, err
    one_line(err, fragment)
    assert seconds <= 10 and peak_mib <= 1024, (seconds, peak_mib)


# --- the wrong diagnosis: the data is to blame, not the learning rate ---------------------------------------
def test_features_beyond_float32_are_a_data_error_naming_the_column():
    X, y = ln.data.load_digits()
    X = X.copy()
    X[:, 7] *= 1e300                                                    # finite in float64, inf in float32
    with pytest.raises(ln.DataError, match="column 'pixel_7'|column 7"):
        ln.SoftmaxRegression(epochs=1).fit(pd_frame(X), y)
    with pytest.raises(ln.DataError, match="column 7.*too large"):
        ln.SoftmaxRegression(solver="lbfgs", epochs=20).fit(X, y)     # float64: squares overflow; never "converged"


def pd_frame(X):
    import pandas as pd
    return pd.DataFrame(X, columns=[f"pixel_{i}" for i in range(X.shape[1])])


@pytest.mark.parametrize("bad", [np.nan, np.inf, None])
def test_streamed_nan_inf_and_missing_features_are_a_data_error(tmp_path, bad):
    import pandas as pd
    X, y = ln.data.load_digits()
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(64)])
    df["f9"] = df["f9"].astype(object if bad is None else float)
    df.loc[1000, "f9"] = bad
    df["y"] = y
    df.to_parquet(tmp_path / "d.parquet")
    for solver in ("sgd", "lbfgs", "newton"):
        with pytest.raises(ln.DataError, match="'f9'"):
            ln.SoftmaxRegression(solver=solver, epochs=3).fit(ln.data.open_shards(tmp_path / "d.parquet", target="y"))
    with pytest.raises(ln.DataError, match="'f9'"):
        ln.LinearRegression().fit(ln.data.open_shards(tmp_path / "d.parquet", target="y"))


# --- model and checkpoint files ------------------------------------------------------------------------------
@pytest.mark.parametrize("edit,fragment", [
    (lambda c: c.replace('"n_features": 64', '"n_features": 1e400'), "n_features"),
    (lambda c: c.replace('"n_features": 64', '"n_features": ' + "9" * 5000), "not valid JSON"),
    (lambda c: c.replace('"n_outputs": 10', '"n_outputs": -10'), "n_outputs"),
])
def test_model_cards_out_of_range_are_model_file_errors(tmp_path, edit, fragment):
    X, y = ln.data.load_digits()
    ln.SoftmaxRegression(epochs=1).fit(X, y).save(tmp_path / "m")
    card = tmp_path / "m" / "model.json"
    card.write_text(edit(card.read_text()))
    with pytest.raises(ln.ModelFileError, match=fragment):
        ln.load(tmp_path / "m")


def test_non_finite_weights_are_refused(tmp_path):
    import torch
    from safetensors.torch import load_file, save_file
    X, y = ln.data.load_digits()
    ln.SoftmaxRegression(epochs=1).fit(X, y).save(tmp_path / "m")
    w = load_file(tmp_path / "m" / "model.safetensors")
    w["W"][3, 3] = float("nan")
    save_file({k: v.contiguous() for k, v in w.items()}, tmp_path / "m" / "model.safetensors",
              metadata={"format": "linearnets-model"})
    with pytest.raises(ln.ModelFileError, match="NaN or infinity"):
        ln.load(tmp_path / "m")
    np.savetxt(tmp_path / "x.csv", X[:3], delimiter=",")
    status, _, err = run_cli("predict", "--model", tmp_path / "m", "--input", tmp_path / "x.csv", "--output",
                             tmp_path / "p.csv", "--proba")
    assert status == 2 and not (tmp_path / "p.csv").exists()
    assert torch.isnan(w["W"]).any()


def test_a_checkpoint_with_the_right_settings_but_wrong_shapes_is_skipped(tmp_path):
    import torch

    from linearnets.checkpoint import Checkpointer, list_checkpoints
    from linearnets.params import Params
    from linearnets.train import TrainState
    X, y = ln.data.load_digits()
    m = ln.SoftmaxRegression(epochs=2)
    m.fit(X, y, checkpoint_dir=tmp_path)
    good = list_checkpoints(tmp_path)[0]
    fingerprint = json.loads(__import__("safetensors").safe_open(str(good), "pt").metadata()["meta"])["fingerprint"]
    forged = TrainState(Params(torch.zeros(5, 3), torch.zeros(3)), epoch=9)
    Checkpointer(tmp_path, fingerprint=fingerprint, keep=10).save(forged)
    with pytest.warns(RuntimeWarning, match="unusable checkpoint"):
        r = ln.SoftmaxRegression(epochs=3).fit(X, y, checkpoint_dir=tmp_path, resume=True)
    assert r.resumed_from_ == str(good) and r.n_iter_ == 3


# --- settings of the wrong type or range, one place for the API and the CLI -----------------------------------
@pytest.mark.parametrize("settings,fragment", [
    (dict(epochs=3.0), "Invalid epochs: 3.0"), (dict(epochs=True), "Invalid epochs"),
    (dict(lr="0.1"), "Invalid learning rate: '0.1'"), (dict(lr=None), "Invalid learning rate: None"),
    (dict(seed=None), "Invalid seed: None"), (dict(seed="a"), "Invalid seed: 'a'"), (dict(seed=-1), "Invalid seed"),
    (dict(validation_fraction=float("nan"), early_stopping=True), "Invalid validation_fraction"),
    (dict(validation_fraction=-0.5), "Invalid validation_fraction"), (dict(momentum=1.0), "Invalid momentum"),
    (dict(weight_decay=100.0, lr=0.1), "lr × weight_decay"), (dict(weight_decay=1e300), "Invalid weight_decay"),
    (dict(batch_size=0), "Invalid batch_size: 0"),
    (dict(verbose=-1), "Invalid verbose"), (dict(solver=None), "Invalid solver"), (dict(tol=float("inf")), "Invalid tol"),
])
def test_settings_are_checked_by_type_and_range(settings, fragment):
    X, y = ln.data.load_digits()
    with pytest.raises(ln.ConfigError, match=fragment.replace("(", r"\(").replace("×", "×")):
        ln.SoftmaxRegression(**settings).fit(X, y)


@pytest.mark.parametrize("P", [2.5, 0, -1, True])
def test_simulate_ranks_must_be_a_positive_integer(P):
    X, y = ln.data.load_digits()
    with pytest.raises(ln.ConfigError, match="simulate_ranks"):
        ln.SoftmaxRegression(epochs=1).fit(X, y, simulate_ranks=P)


def test_seeds_are_used_at_full_width():
    X, y = ln.data.load_digits()
    a = ln.SoftmaxRegression(epochs=1, seed=1).fit(X, y)
    b = ln.SoftmaxRegression(epochs=1, seed=2**32 + 1).fit(X, y)
    assert not np.array_equal(a.coef_, b.coef_)
    c = ln.SoftmaxRegression(epochs=2, seed=2**70, early_stopping=True).fit(X, y)
    assert c.n_iter_ >= 1


def test_cli_weight_decay_and_ranks_and_odd_files(tmp_path):
    import pandas as pd
    status, _, err = run_cli("train", "--data", "digits", "--weight-decay", "1e300", "--out", tmp_path / "a", "--quiet")
    assert status == 2
    one_line(err, "weight_decay")
    status, _, err = run_cli("train", "--data", "digits", "--simulate-ranks", "0", "--out", tmp_path / "b", "--quiet")
    assert status == 2
    one_line(err, "simulate_ranks")
    np.save(tmp_path / "td.npy", np.arange(10).astype("timedelta64[s]").reshape(5, 2))
    status, _, err = run_cli("train", "--data", tmp_path / "td.npy", "--out", tmp_path / "c", "--quiet")
    assert status == 2
    one_line(err, "timedelta64")
    (tmp_path / "pq").mkdir()
    pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "y": [0, 1, 0, 1]}).to_parquet(tmp_path / "pq" / "p0.parquet")
    pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "y": ["0", "1", "0", "1"]}).to_parquet(tmp_path / "pq" / "p1.parquet")
    status, _, err = run_cli("train", "--data", tmp_path / "pq", "--target", "y", "--out", tmp_path / "d", "--quiet")
    assert status == 2
    one_line(err, "numbers in some rows or shards and text in others")


# --- distributed set-up ---------------------------------------------------------------------------------------
def test_distributed_environment_errors_are_one_line(tmp_path):
    base = {**ENV, "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29533",
            "LINEARNETS_DIST_TIMEOUT": "3"}
    cmd = [PY, "-m", "linearnets", "train", "--data", "digits", "--distributed", "--out", str(tmp_path / "o"), "--quiet"]
    r = subprocess.run(cmd, env={**base, "RANK": "abc"}, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    one_line(r.stderr, "RANK='abc'")
    t0 = time.time()
    r = subprocess.run(cmd, env={**base, "RANK": "1"}, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and time.time() - t0 < 3 + 15                # the timeout, plus starting Python
    one_line(r.stderr, "cannot join the process group", "is rank 0 running")
    assert len(r.stderr.strip().splitlines()) == 1


# --- predict: header-less CSV, kept columns, output formats -------------------------------------------------------
def test_predict_reads_headerless_csv_keeps_ids_and_writes_by_extension(tmp_path):
    import pandas as pd
    X, y = ln.data.load_digits()
    run_cli("train", "--data", "digits", "--epochs", 1, "--out", tmp_path / "m", "--quiet")
    model = ln.load(tmp_path / "m")
    np.savetxt(tmp_path / "raw.csv", X[:7], delimiter=",")
    status, _, err = run_cli("predict", "--model", tmp_path / "m", "--input", tmp_path / "raw.csv", "--output",
                             tmp_path / "p.csv")
    assert status == 0, err
    expected = model.predict(pd.DataFrame(X[:7], columns=model.feature_names_in_))
    assert list(pd.read_csv(tmp_path / "p.csv")["prediction"]) == list(expected)             # no row lost
    frame = pd.DataFrame(X[:7], columns=[f"pixel_{i}" for i in range(64)])
    frame.insert(0, "id", [f"row-{i}" for i in range(7)])
    frame.to_csv(tmp_path / "ids.csv", index=False)
    for suffix, read in ((".csv", pd.read_csv), (".parquet", pd.read_parquet)):
        status, _, err = run_cli("predict", "--model", tmp_path / "m", "--input", tmp_path / "ids.csv", "--keep", "id",
                                 "--proba", "--output", tmp_path / f"q{suffix}")
        assert status == 0, err
        out = read(tmp_path / f"q{suffix}")
        assert list(out["id"]) == [f"row-{i}" for i in range(7)] and "p_9" in out.columns
    status, _, err = run_cli("predict", "--model", tmp_path / "m", "--input", tmp_path / "raw.csv", "--output",
                             tmp_path / "q.npy")
    assert status == 0 and np.load(tmp_path / "q.npy").shape == (7, 1)
    status, out, err = run_cli("predict", "--model", tmp_path / "m", "--input", tmp_path / "raw.csv", "--output", "-")
    assert status == 0 and out.splitlines()[0] == "prediction" and len(out.splitlines()) == 8
    assert not (tmp_path / "-").exists() and not Path("-").exists()
    status, _, err = run_cli("predict", "--model", tmp_path / "m", "--input", tmp_path / "raw.csv", "--output",
                             tmp_path / "q.xlsx")
    assert status == 2
    one_line(err, "unknown format")
    status, _, err = run_cli("predict", "--model", tmp_path / "m", "--input", tmp_path / "raw.csv", "--no-header",
                             "--output", tmp_path / "r.csv")
    assert status == 0 and len(pd.read_csv(tmp_path / "r.csv")) == 7
