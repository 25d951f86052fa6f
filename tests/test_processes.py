"""Real processes: a run killed with SIGKILL resumes bitwise; torchrun with 2 gloo ranks equals one
process; a dead rank stops the other cleanly; torchrun --max-restarts resumes from a checkpoint."""

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import relerr
from safetensors.torch import load_file

import linearnets as ln
from linearnets.checkpoint import list_checkpoints, load_checkpoint

PY = sys.executable
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_cmd(out, *args):
    return [PY, "-m", "linearnets", "train", "--out", str(out), "--quiet", *map(str, args)]


def torchrun_cmd(out, *args, nproc=2, extra=()):
    # the c10d rendezvous, as the README recommends (--master-addr/--master-port works too)
    return [PY, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--rdzv-backend", "c10d",
            "--rdzv-endpoint", f"127.0.0.1:{free_port()}", *extra, "-m", "linearnets", "train", "--out", str(out),
            "--quiet", "--distributed", *map(str, args)]


def run(cmd, timeout=240, env=ENV):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert p.returncode == 0, f"{' '.join(cmd)}\n{p.stdout}\n{p.stderr[-3000:]}"
    return p


def params(out):
    return load_file(str(Path(out) / "model.safetensors"))


def wait_for_checkpoint(folder, at_least: tuple[int, int], proc, limit=120):
    t0 = time.time()
    while time.time() - t0 < limit:
        for path in list_checkpoints(folder):
            e, s = (int(x) for x in path.stem.split("-")[1:])
            if (e, s) >= at_least:
                return
        if proc.poll() is not None:
            pytest.fail(f"the run ended before the checkpoint {at_least} appeared: {proc.stderr.read()[-2000:]}")
        time.sleep(0.002)
    pytest.fail(f"no checkpoint {at_least} within {limit} s")


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    X, y = ln.data.load_digits()
    folder = tmp_path_factory.mktemp("shards")
    for i, part in enumerate(np.array_split(np.column_stack([X, y]).astype(np.float32), 4)):
        np.save(folder / f"part{i}.npy", part)
    return folder


# --- SIGKILL and --resume ---------------------------------------------------------------------
@pytest.mark.parametrize("data", ["digits", "shards"])
def test_killed_run_resumes_bitwise(tmp_path, shards, data):
    source = str(shards) if data == "shards" else "digits"
    args = ["--data", source, "--epochs", 4, "--batch-size", 8, "--lr", 0.05, "--momentum", 0.9,
            "--seed", 3, "--checkpoint-every", 3, "--shuffle-buffer", 300, "--block-rows", 64]
    run(train_cmd(tmp_path / "ref", *args))
    steps_per_epoch = (1437 if data == "digits" else 1797 + 7) // 8
    target = random.SystemRandom().randrange(3, 2 * steps_per_epoch)       # a random step in epochs 1–2
    at = (target // steps_per_epoch, target % steps_per_epoch)
    proc = subprocess.Popen(train_cmd(tmp_path / "run", *args), env=ENV, stderr=subprocess.PIPE, text=True)
    wait_for_checkpoint(tmp_path / "run" / "checkpoints", at, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "run" / "model.safetensors").exists()
    left = list_checkpoints(tmp_path / "run" / "checkpoints")
    assert left and all(load_checkpoint(p) for p in left)                 # none half-written
    killed_at = load_checkpoint(left[0])
    p = run(train_cmd(tmp_path / "run", *args, "--resume"))
    assert "resumed from" in p.stderr
    a, b = params(tmp_path / "ref"), params(tmp_path / "run")
    assert torch.equal(a["W"], b["W"]) and torch.equal(a["b"], b["b"]), \
        f"killed near step {at}, resumed from epoch {killed_at.epoch} step {killed_at.step}"
    h_ref = json.loads((tmp_path / "ref" / "metrics.json").read_text())["history"]
    h_run = json.loads((tmp_path / "run" / "metrics.json").read_text())["history"]
    assert [r["loss"] for r in h_ref] == [r["loss"] for r in h_run]


def test_resume_refuses_other_settings_and_starts_fresh_without_checkpoint(tmp_path):
    out = tmp_path / "r"
    p = run(train_cmd(out, "--data", "digits", "--epochs", 1, "--resume"))
    assert "started from scratch" in p.stderr
    bad = subprocess.run(train_cmd(out, "--data", "digits", "--epochs", 1, "--lr", 0.5, "--resume"),
                         capture_output=True, text=True, env=ENV)
    assert bad.returncode == 2 and "other settings" in bad.stderr and "lr" in bad.stderr


# --- two gloo ranks ------------------------------------------------------------------------------
@pytest.mark.parametrize("data", ["digits", "shards"])
def test_two_ranks_equal_one_process_with_twice_the_batch(tmp_path, shards, data):
    source = str(shards) if data == "shards" else "digits"
    args = ["--data", source, "--epochs", 2, "--batch-size", 16, "--lr", 0.5, "--val-fraction", 0]
    run(torchrun_cmd(tmp_path / "dist", *args))
    run(train_cmd(tmp_path / "one", *args, "--simulate-ranks", 2))   # one process, steps of 2·16 rows
    a, b = params(tmp_path / "dist"), params(tmp_path / "one")
    assert relerr(a["W"], b["W"]) < 1e-5 and relerr(a["b"], b["b"]) < 1e-5


RANK_SCRIPT = """
import hashlib, sys
from pathlib import Path
import linearnets as ln
from linearnets.distributed import init_from_env
comm = init_from_env()
X, y = ln.data.load_digits()
m = ln.SoftmaxRegression(solver="sgd", lr="auto", batch_size=16, epochs=2).fit(X, y, comm=comm)
digest = hashlib.sha256(m.coef_.tobytes() + m.intercept_.tobytes()).hexdigest()
Path(sys.argv[1], f"rank{comm.rank}.txt").write_text(f"{m.lr_!r} {digest}")
comm.close()
"""


def test_lr_auto_is_one_rate_for_every_rank(tmp_path):
    """Each rank measures the curvature on its own share; they must still step with one rate (they
    once took their own: two replicas drifting apart, rank 0's saved, no error)."""
    script = tmp_path / "ranks.py"
    script.write_text(RANK_SCRIPT)
    cmd = [PY, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--rdzv-backend", "c10d",
           "--rdzv-endpoint", f"127.0.0.1:{free_port()}", str(script), str(tmp_path)]
    run(cmd)
    a, b = ((tmp_path / f"rank{r}.txt").read_text().split() for r in (0, 1))
    assert a == b                                        # the same lr_ and bit-identical parameters


@pytest.mark.parametrize("model,solver,data", [("linear", "exact", "diabetes"), ("softmax", "newton", "digits"),
                                                ("linear", "exact", "shards")])
def test_distributed_exact_and_newton_equal_one_process(tmp_path, shards, model, solver, data):
    source = str(shards) if data == "shards" else data
    target = ["--target", 0] if data == "shards" else []               # regress pixel 0 on the rest
    args = ["--model", model, "--solver", solver, "--data", source, "--dtype", "float64",
            "--weight-decay", 1e-3, "--epochs", 30, "--val-fraction", 0, *target]
    run(torchrun_cmd(tmp_path / "dist", *args))
    run(train_cmd(tmp_path / "one", *args))
    a, b = params(tmp_path / "dist"), params(tmp_path / "one")
    if model == "softmax":          # softmax is blind to b + c·1 (b unpenalised): compare b - mean(b)
        a["b"], b["b"] = a["b"] - a["b"].mean(), b["b"] - b["b"].mean()
    assert relerr(a["W"], b["W"]) < 1e-10 and relerr(a["b"], b["b"]) < 1e-10


# --- a rank dies ----------------------------------------------------------------------------------
LONG = ["--data", "synthetic-fashion", "--epochs", 50, "--batch-size", 32, "--val-fraction", 0,
        "--checkpoint-every", 20]


def test_dead_rank_stops_the_other_within_a_minute(tmp_path):
    port = free_port()
    procs = []
    for rank in range(2):
        env = {**ENV, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        cmd = [PY, "-m", "linearnets", "train", "--out", str(tmp_path / "out"), "--quiet", "--distributed", *map(str, LONG)]
        procs.append(subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True))
    wait_for_checkpoint(tmp_path / "out" / "checkpoints", (0, 40), procs[0])
    procs[1].send_signal(signal.SIGKILL)
    procs[1].communicate()
    t0 = time.time()
    try:
        _, err = procs[0].communicate(timeout=60)
    except subprocess.TimeoutExpired:
        procs[0].kill()
        procs[0].communicate()
        pytest.fail("rank 0 hung for 60 s after rank 1 died")
    assert procs[0].returncode != 0 and "lost contact with another rank" in err, err[-2000:]
    assert len(err.strip().splitlines()) == 1, err                       # one line, no traceback
    assert time.time() - t0 < 60


def _workers(tag: str, rank: int) -> list[int]:
    """PIDs of first-generation torchrun workers of rank ``rank`` carrying our tag."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            env = dict(kv.split("=", 1) for kv in (d / "environ").read_text().split("\0") if "=" in kv)
        except OSError:
            continue
        if env.get("LINEARNETS_TEST_TAG") == tag and env.get("RANK") == str(rank) \
                and env.get("TORCHELASTIC_RESTART_COUNT") == "0":
            found.append(int(d.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to find the worker")
def test_torchrun_restart_resumes_from_the_newest_checkpoint(tmp_path):
    args = ["--data", "digits", "--epochs", 6, "--batch-size", 4, "--lr", 0.05, "--val-fraction", 0,
            "--checkpoint-every", 5, "--resume"]
    run(torchrun_cmd(tmp_path / "ref", *args))
    tag = uuid.uuid4().hex
    env = {**ENV, "LINEARNETS_TEST_TAG": tag}
    job = subprocess.Popen(torchrun_cmd(tmp_path / "run", *args, extra=["--max-restarts", "1"]), env=env,
                           stderr=subprocess.PIPE, text=True)
    wait_for_checkpoint(tmp_path / "run" / "checkpoints", (1, 0), job)
    pids = _workers(tag, 1)
    assert pids, "rank 1 worker not found"
    os.kill(pids[0], signal.SIGKILL)
    out, err = job.communicate(timeout=240)
    assert job.returncode == 0, err[-3000:]
    assert "resumed from" in err
    a, b = params(tmp_path / "ref"), params(tmp_path / "run")
    assert torch.equal(a["W"], b["W"]) and torch.equal(a["b"], b["b"])
    # the resumed epoch's training accuracy counts every rank's hits once (rank 0 carries the sum)
    h_ref, h_run = (json.loads((tmp_path / r / "metrics.json").read_text())["history"] for r in ("ref", "run"))
    assert [r["accuracy"] for r in h_ref] == [r["accuracy"] for r in h_run]
