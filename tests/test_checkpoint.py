"""linearnets.checkpoint directly: a TrainState written and read back whole, atomically, the newest
kept, damaged files skipped, other settings refused."""

import os

import pytest
import torch

from linearnets.checkpoint import Checkpointer, list_checkpoints, load_checkpoint, load_latest
from linearnets.errors import CheckpointError
from linearnets.params import Params
from linearnets.train import History, TrainState


def state(epoch=2, step=7, scale=1.0):
    g = torch.Generator().manual_seed(epoch * 1000 + step)
    return TrainState(Params(torch.randn(5, 3, generator=g) * scale, torch.randn(3, generator=g)), epoch=epoch,
                      step=step, partial={"loss_sum": 12.5, "samples": 40, "hits": 31.0},
                      solver_state={"vW": torch.randn(3, 5, generator=g), "vb": torch.zeros(3)},
                      guard_limit=1e6, history=History([{"epoch": 1, "loss": 0.7, "accuracy": 0.5}]))


def test_roundtrip_is_exact(tmp_path):
    s = state()
    path = Checkpointer(tmp_path, fingerprint={"lr": 0.1}).save(s)
    assert path.name == "ckpt-000002-000000007.safetensors"
    c = load_checkpoint(path)
    assert torch.equal(c.params.W, s.params.W) and torch.equal(c.params.b, s.params.b)
    assert (c.epoch, c.step, c.partial, c.guard_limit) == (2, 7, s.partial, 1e6)
    assert set(c.solver_state) == {"vW", "vb"} and torch.equal(c.solver_state["vW"], s.solver_state["vW"])
    assert list(c.history) == list(s.history) and c.fingerprint == {"lr": 0.1} and c.path == path


def test_keeps_the_newest_and_leaves_no_temporary(tmp_path):
    ck = Checkpointer(tmp_path, fingerprint={}, keep=2)
    for e, st in [(1, 0), (1, 5), (2, 0), (2, 3)]:
        ck.save(state(e, st))
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt-000002-000000003.safetensors",
                                                             "ckpt-000002-000000000.safetensors"]
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []
    (tmp_path / ".ckpt-000003-000000000.safetensors.x.tmp").write_bytes(b"half")   # a killed writer's
    Checkpointer(tmp_path, fingerprint={})
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []


def test_a_damaged_newest_file_is_skipped_with_a_warning(tmp_path):
    ck = Checkpointer(tmp_path, fingerprint={"a": 1})
    ck.save(state(1, 0))
    newest = ck.save(state(1, 9))
    newest.write_bytes(newest.read_bytes()[:100])
    with pytest.warns(RuntimeWarning, match="damaged"):
        c = load_latest(tmp_path, {"a": 1})
    assert (c.epoch, c.step) == (1, 0)


def test_other_settings_are_refused_naming_them(tmp_path):
    Checkpointer(tmp_path, fingerprint={"lr": 0.1, "n": 100}).save(state())
    with pytest.raises(CheckpointError, match="lr: 0.1 then, 0.5 now"):
        load_latest(tmp_path, {"lr": 0.5, "n": 100})
    assert load_latest(tmp_path / "none", {"lr": 0.5}) is None


def test_non_finite_or_inconsistent_checkpoints_are_errors(tmp_path):
    ck = Checkpointer(tmp_path, fingerprint={})
    bad = state()
    bad.params.W[0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="not finite"):
        load_checkpoint(ck.save(bad))
    (tmp_path / "ckpt-000009-000000000.safetensors").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "ckpt-000009-000000000.safetensors")


def test_ranks_other_than_zero_write_nothing(tmp_path):
    ck = Checkpointer(tmp_path / "x", fingerprint={}, write=False)
    assert ck.save(state()) is None and not (tmp_path / "x").exists()
    assert Checkpointer(tmp_path, fingerprint={}, every_steps=4).due(8) and not \
        Checkpointer(tmp_path, fingerprint={}, every_steps=0).due(8)
    with pytest.raises(CheckpointError):
        Checkpointer(tmp_path, fingerprint={}, every_steps=-1)
