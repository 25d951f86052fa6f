"""Fuzzed readers: random and mutated bytes give only the library's typed errors.

Every reader that takes a user's file — CSV, NPY, Parquet, IDX (gz and raw), a saved model
(model.json + model.safetensors), a checkpoint, NPY and Parquet shards streamed into training —
is fed random bytes and mutations of a valid file
(truncations, flipped bytes, wrong magic, huge declared sizes, wrong dtypes) — and svmlight
files, read whole and streamed. The only
exceptions allowed out are :class:`linearnets.LinearnetsError` subclasses; anything else (or a
hang past the deadline, or a crash) fails the test. The default run tries a few hundred cases per
reader; ``-m slow`` runs 2000+ per reader (the HYPOTHESIS_CASES environment variable overrides).
"""

import gzip
import io
import os
import struct
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

import linearnets as ln
from linearnets.checkpoint import Checkpointer, load_checkpoint, load_latest
from linearnets.data import idx
from linearnets.params import Params
from linearnets.train import History, TrainState

DEFAULT_CASES = int(os.environ.get("HYPOTHESIS_CASES", 250))
SLOW_CASES = int(os.environ.get("HYPOTHESIS_CASES", 2000))
COMMON = dict(deadline=5000, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
              derandomize=True)

COUNTS: dict[str, int] = {}


def _count(name):
    COUNTS[name] = COUNTS.get(name, 0) + 1


def mutations(valid: bytes):
    """Random bytes, or the valid file truncated / with bytes flipped / with a span overwritten."""
    n = len(valid)
    truncated = st.integers(0, max(0, n - 1)).map(lambda i: valid[:i])
    flipped = st.lists(st.tuples(st.integers(0, max(0, n - 1)), st.integers(1, 255)), min_size=1, max_size=8).map(
        lambda flips: _flip(valid, flips))
    overwritten = st.tuples(st.integers(0, max(0, n - 1)), st.binary(min_size=1, max_size=16)).map(
        lambda t: valid[:t[0]] + t[1] + valid[t[0] + len(t[1]):])
    huge = st.integers(0, max(0, n - 8)).map(lambda i: valid[:i] + b"\xff\xff\xff\x7f" * 2 + valid[i + 8:])
    return st.one_of(st.binary(max_size=2048), truncated, flipped, overwritten, huge)


def _flip(data: bytes, flips) -> bytes:
    b = bytearray(data)
    for i, x in flips:
        if b:
            b[i % len(b)] ^= x
    return bytes(b)


def expect_typed(fn, name):
    _count(name)
    try:
        fn()
    except ln.LinearnetsError:
        pass                                          # a typed error is the only allowed failure


# --- valid seeds --------------------------------------------------------------------------
def _frame():
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.standard_normal((12, 3)), columns=["a", "b", "c"])
    df["label"] = rng.integers(0, 3, 12)
    return df


VALID_CSV = _frame().to_csv(index=False).encode()
_buf = io.BytesIO()
np.save(_buf, _frame().to_numpy())
VALID_NPY = _buf.getvalue()
_buf = io.BytesIO()
np.save(_buf, np.ascontiguousarray(_frame().to_numpy()))    # streaming reads rows: C order
VALID_NPY_C = _buf.getvalue()
_buf = io.BytesIO()
_frame().to_parquet(_buf)
VALID_PARQUET = _buf.getvalue()
VALID_IDX = bytes([0, 0, 8, 3]) + struct.pack(">3I", 4, 5, 6) + bytes(range(120))
VALID_IDX_GZ = gzip.compress(VALID_IDX)


def _model_files():
    X, y = ln.data.load_digits()
    with tempfile.TemporaryDirectory() as d:
        ln.SoftmaxRegression(epochs=1).fit(X[:100, :8], y[:100]).save(d)
        return (Path(d) / "model.json").read_bytes(), (Path(d) / "model.safetensors").read_bytes()


VALID_CARD, VALID_WEIGHTS = _model_files()


def _table(tmp: Path, suffix: str, data: bytes, target="label"):
    path = tmp / f"fuzz{suffix}"
    path.write_bytes(data)
    return lambda: ln.data.read_table(path, target if suffix != ".npy" else -1)


def _load_model(tmp: Path, card: bytes, weights: bytes):
    (tmp / "model.json").write_bytes(card)
    (tmp / "model.safetensors").write_bytes(weights)

    def go():
        m = ln.load(tmp)
        m.predict(np.zeros((2, m.n_features_in_)))
    return go


def _checkpoint_file():
    with tempfile.TemporaryDirectory() as d:
        ck = Checkpointer(d, fingerprint={"lr": 0.1, "n": 12})
        state = TrainState(Params(torch.ones(4, 3), torch.zeros(3)), epoch=1, step=3,
                           partial={"loss_sum": 1.5, "samples": 12}, solver_state={"vW": torch.zeros(3, 4)},
                           history=History([{"epoch": 1, "loss": 0.5}]))
        return ck.save(state).read_bytes()


VALID_CHECKPOINT = _checkpoint_file()


def _load_checkpoint(tmp: Path, data: bytes):
    folder = tmp / "checkpoints"
    folder.mkdir(exist_ok=True)
    (folder / "ckpt-000001-000000003.safetensors").write_bytes(data)

    def go():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")                # a damaged file is skipped with a warning
            load_latest(folder, {"lr": 0.1, "n": 12})
        load_checkpoint(folder / "ckpt-000001-000000003.safetensors")
    return go


def _stream(tmp: Path, suffix: str, data: bytes):
    """A fuzzed shard streamed through one SGD epoch (every row read by the reader thread)."""
    folder = tmp / f"shards{suffix}"
    folder.mkdir()
    (folder / f"part0{suffix}").write_bytes(data)

    def go():
        shards = ln.data.open_shards(folder, buffer_rows=5, block_rows=3)
        with warnings.catch_warnings():                    # odd scales or a short run are warned about: fine
            warnings.simplefilter("ignore", ln.ScaleWarning)
            warnings.simplefilter("ignore", ConvergenceWarning)
            ln.LinearRegression(solver="sgd", epochs=1, batch_size=4).fit(shards)
    return go


VALID_SVM = b"1 1:0.5 3:2\n0 2:1.25\n2 1:1 2:-3 4:0.125\n1 4:1\n0 3:7\n"


def _svm(tmp: Path, data: bytes):
    path = tmp / "fuzz.svm"
    path.write_bytes(data)

    def go():
        ds = ln.data.read_svmlight(path)
        if len(set(ds.y.tolist())) > 1:
            with warnings.catch_warnings():                # a short budget on odd data: warned, fine
                warnings.simplefilter("ignore", ConvergenceWarning)
                ln.SoftmaxRegression(solver="lbfgs", epochs=5).fit(ds.X, ds.y)
    return go


def _svm_stream(tmp: Path, data: bytes):
    folder = tmp / "svm"
    folder.mkdir()
    (folder / "part0.svm").write_bytes(data)

    def go():
        shards = ln.data.open_shards(folder, buffer_rows=3, block_rows=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            ln.LinearRegression(solver="sgd", epochs=1, batch_size=2).fit(shards)
    return go


READERS = {
    "svmlight": (VALID_SVM, _svm),
    "svmlight-shard": (VALID_SVM, _svm_stream),
    "csv": (VALID_CSV, lambda tmp, data: _table(tmp, ".csv", data)),
    "npy": (VALID_NPY, lambda tmp, data: _table(tmp, ".npy", data)),
    "parquet": (VALID_PARQUET, lambda tmp, data: _table(tmp, ".parquet", data)),
    "idx-raw": (VALID_IDX, lambda tmp, data: (lambda: idx.parse_idx(data))),
    "idx-gz": (VALID_IDX_GZ, lambda tmp, data: (lambda: idx.parse_idx(data))),
    "model.json": (VALID_CARD, lambda tmp, data: _load_model(tmp, data, VALID_WEIGHTS)),
    "model.safetensors": (VALID_WEIGHTS, lambda tmp, data: _load_model(tmp, VALID_CARD, data)),
    "checkpoint": (VALID_CHECKPOINT, _load_checkpoint),
    "npy-shard": (VALID_NPY_C, lambda tmp, data: _stream(tmp, ".npy", data)),
    "parquet-shard": (VALID_PARQUET, lambda tmp, data: _stream(tmp, ".parquet", data)),
}


def _fuzz(name, cases):
    valid, make = READERS[name]

    @settings(max_examples=cases, **COMMON)
    @given(data=mutations(valid))
    def run(data):
        with tempfile.TemporaryDirectory() as tmp:
            expect_typed(make(Path(tmp), data), name)
    run()


@pytest.mark.parametrize("name", list(READERS))
def test_fuzz_reader(name):
    _fuzz(name, DEFAULT_CASES)
    print(f"{name}: {COUNTS[name]} cases")
    assert COUNTS[name] >= min(DEFAULT_CASES, 200)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(READERS))
def test_fuzz_reader_slow(name):
    before = COUNTS.get(name, 0)
    _fuzz(name, SLOW_CASES)
    print(f"{name}: {COUNTS[name] - before} cases")
    assert COUNTS[name] - before >= SLOW_CASES * 0.9


def test_valid_seeds_parse():
    """The mutations start from files that do load (so the fuzzing is near the real format)."""
    with tempfile.TemporaryDirectory() as tmp:
        for valid, make in READERS.values():
            make(Path(tmp), valid)()


def test_huge_declared_sizes_do_not_allocate():
    # IDX header declaring 4 × 2^32 elements of float64 with 10 bytes present: refused at once
    with pytest.raises(ln.FormatError):
        idx.parse_idx(bytes([0, 0, 0x0E, 2]) + struct.pack(">2I", 2**32 - 1, 2**32 - 1) + b"x" * 10)
    # a header that declares 1 GiB but brings no data: refused (over the size limit), not allocated
    with pytest.raises(ln.FormatError, match="allowed"):
        idx.parse_idx(bytes([0, 0, 8, 1]) + struct.pack(">I", 2**30) + b"x" * 10)
    # within the limit but with no data: truncated, not allocated
    with pytest.raises(ln.FormatError, match="truncated"):
        idx.parse_idx(bytes([0, 0, 8, 1]) + struct.pack(">I", 2**28) + b"x" * 10)
    # an NPY header declaring a huge shape over a tiny file
    header = VALID_NPY.replace(b"(12, 4)", b"(999999999, 4)")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "big.npy").write_bytes(header)
        with pytest.raises(ln.FormatError):
            ln.data.read_table(Path(tmp) / "big.npy")
