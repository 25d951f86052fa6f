"""Streaming from NPY/Parquet shards: the readers, the shuffle, and that streamed training
equals in-memory training (exact to 1e-10, Newton, and SGD when the order is the same)."""

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import relerr
from hypothesis import given, settings
from hypothesis import strategies as st

import linearnets as ln
from linearnets.data import open_shards
from linearnets.data.shuffle import epoch_generator, rank_range, shuffled_batches
from linearnets.losses import get_loss


def write_shards(folder, A, parts, kind="npy", row_group=None):
    folder.mkdir(parents=True, exist_ok=True)
    for i, P in enumerate(np.array_split(A, parts)):
        if kind == "npy":
            np.save(folder / f"part{i:03d}.npy", P)
        else:
            df = pd.DataFrame(P, columns=[f"f{j}" for j in range(A.shape[1] - 1)] + ["y"])
            df.to_parquet(folder / f"part{i:03d}.parquet", row_group_size=row_group or 1000)
    return folder


def as_ids(A):
    """Row id in the first feature column, for order checks."""
    return np.column_stack([np.arange(len(A), dtype=A.dtype), A])


@pytest.fixture(scope="module")
def regression_data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3001, 7)) * [1, 10, 0.1, 1e3, 1, 1, 5] + [0, 100, 0, 5e3, 1, -2, 0]
    y = X @ rng.standard_normal(7) + 3.0 + rng.standard_normal(3001)
    return X, y


@pytest.mark.parametrize("kind", ["npy", "parquet"])
def test_shards_read_every_row_in_file_order(tmp_path, kind):
    A = np.random.default_rng(1).standard_normal((1000, 5))
    sh = open_shards(write_shards(tmp_path / "s", A, 3, kind, row_group=128), target=2 if kind == "npy" else "f2")
    assert (sh.n, sh.d, len(sh.paths)) == (1000, 4, 3)
    X = np.concatenate([x for x, _, _ in sh.blocks(97)])
    y = np.concatenate([t for _, t, _ in sh.blocks(97)])
    np.testing.assert_array_equal(X, np.delete(A, 2, axis=1))
    np.testing.assert_array_equal(y, A[:, 2])
    part = np.concatenate([x for x, _, _ in sh.rows(333, 777).blocks(50)])
    np.testing.assert_array_equal(part, np.delete(A, 2, axis=1)[333:777])


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 400), B=st.integers(1, 64), buffer=st.integers(0, 300), block=st.integers(1, 90),
       parts=st.integers(1, 4), seed=st.integers(0, 1000))
def test_shuffled_batches_are_a_permutation(tmp_path_factory, n, B, buffer, block, parts, seed):
    A = as_ids(np.zeros((n, 2), np.float32))
    sh = open_shards(write_shards(tmp_path_factory.mktemp("p"), A, min(parts, n)))
    encode = lambda y: torch.from_numpy(np.asarray(y, np.float64))
    batches = list(shuffled_batches(sh, B, generator=epoch_generator(seed, 0), encode=encode,
                                    dtype=torch.float32, buffer_rows=buffer, block_rows=block))
    ids = torch.cat([Xb[:, 0] for Xb, _, _ in batches]).long().numpy()
    assert sorted(ids.tolist()) == list(range(n))                   # every row exactly once
    assert all(len(Xb) == B for Xb, _, _ in batches[:-1]) and 1 <= len(batches[-1][0]) <= B
    again = list(shuffled_batches(sh, B, generator=epoch_generator(seed, 0), encode=encode,
                                  dtype=torch.float32, buffer_rows=buffer, block_rows=block))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again))   # replayable from (seed, epoch)


def test_no_shuffle_is_file_order_and_big_buffer_mixes(tmp_path):
    A = as_ids(np.zeros((1000, 2), np.float32))
    sh = open_shards(write_shards(tmp_path / "s", A, 2))
    encode = lambda y: torch.from_numpy(np.asarray(y, np.float64))
    plain = torch.cat([X[:, 0] for X, _, _ in shuffled_batches(sh, 64, generator=None, encode=encode,
                                                             dtype=torch.float32)])
    assert plain.long().tolist() == list(range(1000))
    mixed = torch.cat([X[:, 0] for X, _, _ in shuffled_batches(sh, 64, generator=epoch_generator(0, 0),
                                                             encode=encode, dtype=torch.float32,
                                                             buffer_rows=1000, block_rows=100)])
    first = mixed[:100].long().numpy()                # a uniform permutation: the first 100 rows
    assert len(np.unique(first // 100)) >= 8          # come from nearly all ten blocks


def test_streamed_exact_equals_in_memory(tmp_path, regression_data):
    X, y = regression_data
    folder = write_shards(tmp_path / "reg", np.column_stack([X, y]), 5)
    for wd in (0.0, 1e-2):
        a = ln.LinearRegression(weight_decay=wd).fit(open_shards(folder))
        b = ln.LinearRegression(weight_decay=wd).fit(X, y)
        assert relerr(a.coef_, b.coef_) < 1e-10 and abs(a.intercept_ - b.intercept_) < 1e-10 * abs(b.intercept_)
    lstsq = np.linalg.lstsq(np.column_stack([X, np.ones(len(X))]), y, rcond=None)[0]
    assert relerr(ln.LinearRegression().fit(open_shards(folder)).coef_, lstsq[:-1]) < 1e-10


def test_streamed_parquet_newton_and_metrics(tmp_path):
    X, y = ln.data.load_digits()
    folder = write_shards(tmp_path / "pq", np.column_stack([X, y]), 3, kind="parquet", row_group=200)
    sh = open_shards(folder, target="y")
    a = ln.SoftmaxRegression(solver="newton", weight_decay=1e-3, epochs=20).fit(sh)
    b = ln.SoftmaxRegression(solver="newton", weight_decay=1e-3, epochs=20).fit(X, y)
    assert relerr(a.coef_, b.coef_) < 1e-8
    assert list(a.feature_names_in_) == [f"f{j}" for j in range(64)]
    m = a.evaluate(sh)
    assert m["accuracy"] == pytest.approx(b.score(X, y), abs=1e-12)


def test_streamed_sgd_follows_the_replayable_order(tmp_path):
    """SGD on a stream = textbook SGD over the rows in the order the stream yields them."""
    X, y = ln.data.load_digits()
    X = X.astype(np.float64)
    A = np.column_stack([X, y])
    sh = open_shards(write_shards(tmp_path / "s", A, 3), buffer_rows=100, block_rows=64)
    model = ln.SoftmaxRegression(lr=0.3, batch_size=32, epochs=2, dtype="float64").fit(sh)
    W, b = torch.zeros(64, 10, dtype=torch.float64), torch.zeros(10, dtype=torch.float64)
    encode = lambda t: torch.from_numpy(np.asarray(t).astype(np.int64))
    loss = get_loss("cross_entropy")
    for epoch in range(2):
        for Xb, tb, _ in shuffled_batches(sh, 32, generator=epoch_generator(0, epoch), encode=encode,
                                       dtype=torch.float64, buffer_rows=100, block_rows=64):
            _, G = loss.value_and_grad(Xb @ W + b, tb)
            W, b = W - 0.3 * Xb.T @ G, b - 0.3 * G.sum(0)
    assert relerr(model.coef_, W.T.numpy()) < 1e-10 and relerr(model.intercept_, b.numpy()) < 1e-10


def test_simulated_ranks_are_one_sgd_over_the_concatenated_rank_batches(tmp_path):
    """The order P ranks would use: batch t = rank 0's batch t, then rank 1's, … (each rank
    shuffles its own contiguous rows). Built by hand here, independently of the data sources."""
    X, y = ln.data.load_digits()
    X = X.astype(np.float64)
    B, P, lr = 16, 2, 0.3
    sim = ln.SoftmaxRegression(lr=lr, batch_size=B, epochs=2, dtype="float64").fit(X, y, simulate_ranks=P)
    Y = torch.nn.functional.one_hot(torch.from_numpy(y), 10).double()
    Xt = torch.from_numpy(X)
    W, b = torch.zeros(64, 10, dtype=torch.float64), torch.zeros(10, dtype=torch.float64)
    loss = get_loss("cross_entropy")
    for epoch in range(2):
        ranks = []
        for r in range(P):
            lo, hi = rank_range(len(X), r, P)
            ranks.append((torch.randperm(hi - lo, generator=epoch_generator(0, epoch, r)) + lo).split(B))
        for t in range(max(map(len, ranks))):
            idx = torch.cat([rb[t] for rb in ranks if t < len(rb)])       # one step over P·B rows
            _, G = loss.value_and_grad(Xt[idx] @ W + b, Y[idx])
            W, b = W - lr * Xt[idx].T @ G, b - lr * G.sum(0)
    assert relerr(sim.coef_, W.T.numpy()) < 1e-10 and relerr(sim.intercept_, b.numpy()) < 1e-10


@pytest.mark.parametrize("make,match", [
    (lambda p: np.save(p / "f.npy", np.asfortranarray(np.ones((5, 3)))), "Fortran"),
    (lambda p: np.save(p / "f.npy", np.ones(5)), "2-D"),
    (lambda p: (np.save(p / "a.npy", np.ones((5, 3))), np.save(p / "b.npy", np.ones((5, 4)))), "differ"),
    (lambda p: (np.save(p / "a.npy", np.ones((5, 3))),
                pd.DataFrame({"a": [1.0], "y": [1]}).to_parquet(p / "b.parquet")), "mixes"),
    (lambda p: pd.DataFrame({"a": ["x", "y"], "y": [0, 1]}).to_parquet(p / "f.parquet"), "not numeric"),
    (lambda p: (p / "f.csv").write_text("a,y\n1,2\n"), "no .npy, .parquet or svmlight"),
])
def test_bad_shards_are_refused_with_a_clear_error(tmp_path, make, match):
    make(tmp_path)
    with pytest.raises(ln.DataError, match=match):
        open_shards(tmp_path)


def test_truncated_npy_shard(tmp_path):
    np.save(tmp_path / "f.npy", np.ones((100, 4)))
    raw = (tmp_path / "f.npy").read_bytes()
    (tmp_path / "f.npy").write_bytes(raw[:-40])
    with pytest.raises(ln.FormatError, match="truncated"):
        open_shards(tmp_path / "f.npy")


def test_peak_memory_does_not_grow_with_rows(tmp_path):
    """Point 1 at CI size: one streamed SGD epoch over 40 000 and 160 000 rows × 784 float32
    (0.13 and 0.5 GB of shards), each in a fresh process: the peak RSS stays the same."""
    from linearnets.bench.stream import run_child
    from linearnets.bench.stream import write_shards as bench_shards

    peaks = {}
    for n in (40_000, 160_000):
        folder = bench_shards(tmp_path / f"rows-{n}", n, shard_rows=50_000)
        r = run_child(folder, "stream")
        assert r["rows"] == n and 0.0 < r["train_accuracy"] <= 1.0
        peaks[n] = r["peak_rss_mib"]
    data_mib = 160_000 * 785 * 4 / 2**20                       # 479 MiB: holding the data would show
    assert peaks[160_000] < 1.10 * peaks[40_000], peaks
    assert peaks[160_000] - peaks[40_000] < 0.1 * data_mib, peaks


def test_big_endian_shards_stream_like_native(tmp_path):
    """Found by fuzzing: a big-endian NPY shard (np.save of a '>f4' array) trains like a native one."""
    X, y = ln.data.load_digits()
    A = np.column_stack([X, y]).astype(np.float32)
    np.save(write_shards(tmp_path / "le", A, 1) / "part000.npy", A)
    (tmp_path / "be").mkdir()
    np.save(tmp_path / "be" / "part000.npy", A.astype(">f4"))
    a = ln.SoftmaxRegression(epochs=2).fit(open_shards(tmp_path / "le"))
    b = ln.SoftmaxRegression(epochs=2).fit(open_shards(tmp_path / "be"))
    np.testing.assert_array_equal(a.coef_, b.coef_)


def test_big_endian_shards_in_full_batch_solvers(tmp_path):
    """The chunked (full-batch) path reads big-endian NPY shards too: exact equals in-memory."""
    X, y = ln.data.load_diabetes()
    (tmp_path / "be").mkdir()
    np.save(tmp_path / "be" / "part0.npy", np.column_stack([X, y]).astype(">f8"))
    a = ln.LinearRegression().fit(open_shards(tmp_path / "be"))
    b = ln.LinearRegression().fit(X, y)
    assert relerr(a.coef_, b.coef_) < 1e-10
