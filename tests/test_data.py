"""Data: the book's synthetic set, IDX files and downloads (on generated files), file readers."""

import gzip
import hashlib
import http.server
import os
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import linearnets as ln
from linearnets.data import idx


def test_synthetic_regression_defaults():
    X, y = ln.data.synthetic_regression()
    assert X.shape == (1000, 2) and y.shape == (1000,)
    resid = y - (X.astype(np.float64) @ [2.0, -3.4] + 4.2)
    assert 0.005 < resid.std() < 0.02                        # σ = 0.01


def test_fashion_like_shape_and_pixels():
    ds = ln.data.fashion_mnist_like(n=2000, seed=1)
    assert ds.X.shape == (2000, 784) and ds.X.dtype == np.float32
    assert ds.X.min() >= 0 and ds.X.max() <= 1
    assert np.allclose(ds.X * 255, np.round(ds.X * 255), atol=1e-4)
    assert set(np.unique(ds.y)) == set(range(10)) and len(ds.class_names) == 10


def test_builtin_sets():
    X, y = ln.data.load_digits()
    assert X.shape == (1797, 64) and X.max() <= 1.0
    X, y = ln.data.load_diabetes()
    assert X.shape == (442, 10) and y.dtype == np.float64


# --- IDX ------------------------------------------------------------------------------------------
def make_idx_set(folder: Path, n=30, compress=True, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix in ("train", "t10k"):
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{prefix}-{kind}-ubyte.gz"
            idx.write_idx(folder / (name if compress else name[:-3]), arr, compress=compress)
    return images, labels


@pytest.mark.parametrize("compress", [True, False])
def test_idx_roundtrip_and_loader(tmp_path, compress):
    images, labels = make_idx_set(tmp_path / "fashion-mnist", compress=compress)
    ds = ln.data.load_fashion_mnist(root=tmp_path, split="train", download=False)
    assert ds.X.shape == (30, 784) and ds.image_shape == (28, 28)
    np.testing.assert_array_equal(ds.y, labels)
    np.testing.assert_allclose(ds.X, images.reshape(30, -1) / 255.0, atol=1e-7)
    assert ds.class_names[0] == "T-shirt/top"


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float32, np.float64])
def test_idx_dtypes(tmp_path, dtype):
    a = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    if dtype == np.uint8:
        a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    idx.write_idx(tmp_path / "a.idx", a)
    np.testing.assert_array_equal(idx.read_idx(tmp_path / "a.idx"), a)


def test_idx_rejects_bad_files(tmp_path):
    good = bytes([0, 0, 8, 1]) + (5).to_bytes(4, "big") + bytes(5)
    assert idx.parse_idx(good).shape == (5,)
    with pytest.raises(ln.FormatError, match="not an IDX"):
        idx.parse_idx(b"\x00\x01\x08\x01" + good[4:])                      # wrong magic
    with pytest.raises(ln.FormatError, match="truncated"):
        idx.parse_idx(good[:-2])
    with pytest.raises(ln.FormatError, match="truncated"):
        idx.parse_idx(gzip.compress(good)[:-12])                           # truncated gzip stream
    with pytest.raises(ln.FormatError, match="more"):
        idx.parse_idx(good + b"\x00")
    huge = bytes([0, 0, 0x0E, 3]) + b"\xff\xff\xff\xff" * 3                # declares exabytes
    with pytest.raises(ln.FormatError, match="declares"):
        idx.parse_idx(huge)
    with pytest.raises(ln.FormatError):
        idx.parse_idx(b"")


def test_missing_files_offline_names_urls_and_folder(tmp_path):
    with pytest.raises(ln.DownloadError) as info:
        ln.data.load_mnist(root=tmp_path, download=False)
    msg = str(info.value)
    assert "train-images-idx3-ubyte.gz" in msg and str(tmp_path / "mnist") in msg and "http" in msg


class _Server:
    """A throwaway HTTP server on 127.0.0.1 serving a folder."""

    def __init__(self, folder):
        handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(folder), **k)
        http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_download_verifies_checksum_and_writes_atomically(tmp_path, monkeypatch):
    served = tmp_path / "served"
    make_idx_set(served)
    sums = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in served.iterdir()}
    cache = tmp_path / "cache"
    with _Server(served) as server:
        monkeypatch.setitem(idx.DATASETS, "mnist", {"mirrors": [server.url], "files": sums,
                                                    "classes": tuple("0123456789")})
        monkeypatch.setenv("LINEARNETS_DATA", str(cache))
        ds = ln.data.load_mnist(split="test")
        assert ds.X.shape == (30, 784)
        assert set(ln.data.verify("mnist").values()) == {"ok"}
        assert not [p for p in (cache / "mnist").iterdir()                             # no temp files
                    if p.name.startswith(".") and p.name != idx.MANIFEST]

        # a cached file changed after its verified download is caught when it is loaded
        images = cache / "mnist" / "t10k-images-idx3-ubyte.gz"
        kept = images.read_bytes()
        changed = bytearray(kept)
        changed[4] ^= 1                                                   # the gzip header's mtime: still valid
        images.write_bytes(bytes(changed))
        with pytest.raises(ln.ChecksumError, match="changed since it was downloaded"):
            ln.data.load_mnist(split="test")
        images.write_bytes(kept)

        # a checksum mismatch: nothing kept under the final name, a clear typed error
        bad = dict(sums, **{"t10k-labels-idx1-ubyte.gz": "0" * 64})
        monkeypatch.setitem(idx.DATASETS, "mnist", {"mirrors": [server.url], "files": bad,
                                                    "classes": tuple("0123456789")})
        (cache / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
        with pytest.raises(ln.ChecksumError, match="SHA-256"):
            ln.data.load_mnist(split="test")
        kept_names = sorted(set(os.listdir(cache / "mnist")) - {idx.MANIFEST})
        assert kept_names == sorted(set(sums) - {"t10k-labels-idx1-ubyte.gz"})


def test_download_error_when_server_is_gone(tmp_path):
    with pytest.raises(ln.DownloadError, match="could not download"):
        idx.download_file("http://127.0.0.1:9/none.gz", tmp_path / "x.gz", "0" * 64, timeout=2)
    assert not list(tmp_path.iterdir())


# --- tables -----------------------------------------------------------------------------------
@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.standard_normal((50, 3)), columns=["a", "b", "c"])
    df["label"] = rng.integers(0, 3, 50)
    return df


@pytest.mark.parametrize("fmt", ["csv", "parquet", "npy"])
def test_read_table_formats(tmp_path, table, fmt):
    path = tmp_path / f"t.{fmt}"
    if fmt == "csv":
        table.to_csv(path, index=False)
    elif fmt == "parquet":
        table.to_parquet(path)
    else:
        np.save(path, table.to_numpy())
    ds = ln.data.read_table(path, "label" if fmt != "npy" else -1)
    assert ds.X.shape == (50, 3) and ds.task == "classification"
    np.testing.assert_allclose(ds.X, table[["a", "b", "c"]].to_numpy())


def test_read_table_errors(tmp_path, table):
    bad = table.copy()
    bad["b"] = "x"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ln.FormatError, match="column 'b' is not numeric"):
        ln.data.read_table(tmp_path / "bad.csv", "label")
    table.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(ln.DataError, match="no column 'nope'"):
        ln.data.read_table(tmp_path / "t.csv", "nope")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ln.DataError, match="empty"):
        ln.data.read_table(tmp_path / "empty.csv")
    (tmp_path / "x.npy").write_bytes(b"not numpy")
    with pytest.raises(ln.FormatError):
        ln.data.read_table(tmp_path / "x.npy")
