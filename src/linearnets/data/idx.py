"""MNIST and Fashion-MNIST: the IDX format, verified downloads, and the loaders.

IDX layout (big-endian): magic ``00 00 TT NN`` (TT the element type, NN the number of
dimensions), NN 32-bit sizes, then the elements. Files may be gzip-compressed.
Downloads go to ``$LINEARNETS_DATA`` or ``~/.cache/linearnets`` (one folder per dataset),
are checked against SHA-256 sums and written atomically (temporary file, then rename).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import json
import math
import os
import struct
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from .._io import atomic_path, atomic_write_bytes
from ..errors import ChecksumError, DownloadError, FormatError
from .dataset import Dataset
from .synthetic import FASHION_CLASSES

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MAX_IDX_BYTES = 512 << 20        # refuse headers that declare more than 512 MiB of data (MNIST: 47 MB)
MAX_GZIP_RATIO = 200             # … or more than 200× the compressed size (MNIST: 5×; a gzip bomb: 1000×)

DATASETS = {
    "fashion-mnist": {
        "mirrors": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"],
        "files": {
            "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
        "classes": FASHION_CLASSES,
    },
    "mnist": {
        "mirrors": ["https://ossci-datasets.s3.amazonaws.com/mnist/",
                    "https://storage.googleapis.com/cvdf-datasets/mnist/"],
        "files": {
            "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
        "classes": tuple(str(i) for i in range(10)),
    },
}


# --- IDX ---------------------------------------------------------------------------------
def parse_idx(raw: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode IDX bytes (gzip or raw) into an array; checks magic, sizes and length."""
    stream = io.BytesIO(raw)
    if raw[:2] == b"\x1f\x8b":
        stream = gzip.GzipFile(fileobj=stream)
    try:
        header = stream.read(4)
        if len(header) < 4 or header[0] != 0 or header[1] != 0 or header[2] not in _IDX_TYPES \
                or not 1 <= header[3] <= 4:
            raise FormatError(f"{source}: not an IDX file (magic {header.hex() or 'empty'}; "
                              "expected 0000 + type byte + 1..4 dimensions)")
        dtype = np.dtype(_IDX_TYPES[header[2]])
        ndim = header[3]
        dims_raw = stream.read(4 * ndim)
        if len(dims_raw) < 4 * ndim:
            raise FormatError(f"{source}: truncated IDX header")
        shape = struct.unpack(f">{ndim}I", dims_raw)
        expected = math.prod(shape) * dtype.itemsize        # Python ints: no int64 overflow
        if expected > MAX_IDX_BYTES:
            raise FormatError(f"{source}: header declares {expected} bytes of data, more than the "
                              f"{MAX_IDX_BYTES} allowed")
        compressed = raw[:2] == b"\x1f\x8b"
        if compressed and expected > MAX_GZIP_RATIO * max(len(raw), 1):
            raise FormatError(f"{source}: a {len(raw)}-byte gzip file declares {expected} bytes of data "
                              f"(more than {MAX_GZIP_RATIO}× its size): not a real IDX file")
        if not compressed and len(raw) != 4 + 4 * ndim + expected:
            kind = "truncated" if len(raw) < 4 + 4 * ndim + expected else "holds more data than declared"
            raise FormatError(f"{source}: {kind}: header {shape} needs {expected} bytes of data, "
                              f"the file holds {len(raw) - 4 - 4 * ndim}")
        body = np.empty(expected, dtype=np.uint8)                # decompressed straight in, no more
        got = stream.readinto(memoryview(body)) if expected else 0
        while got < expected:
            more = stream.readinto(memoryview(body)[got:])
            if not more:
                break
            got += more
        extra = stream.read(1)
    except (OSError, EOFError, zlib.error) as e:              # corrupt or truncated gzip
        raise FormatError(f"{source}: corrupt or truncated gzip stream ({e})") from None
    if got < expected:
        raise FormatError(f"{source}: truncated: header {shape} needs {expected} bytes of data, "
                          f"found {got}")
    if extra:
        raise FormatError(f"{source}: {shape} needs {expected} bytes of data but the file has more")
    return body.view(dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=False)


def read_idx(path) -> np.ndarray:
    path = Path(path)
    return parse_idx(path.read_bytes(), str(path))


def write_idx(path, array: np.ndarray, *, compress: bool | None = None) -> None:
    """Write ``array`` as IDX (gzip when the name ends in .gz). Used by tests and tools."""
    codes = {np.dtype(v).str.lstrip("<>|="): k for k, v in _IDX_TYPES.items()}
    a = np.asarray(array)
    code = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09}.get(a.dtype)
    if code is None:
        code = codes[a.dtype.str.lstrip("<>|=")]
        a = a.astype(a.dtype.newbyteorder(">"))
    raw = bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()
    path = Path(path)
    if compress or (compress is None and path.suffix == ".gz"):
        raw = gzip.compress(raw)
    atomic_write_bytes(path, raw)


# --- downloads ------------------------------------------------------------------------------
def data_home(root=None) -> Path:
    """``root``, else ``$LINEARNETS_DATA``, else ``~/.cache/linearnets``."""
    if root is not None:
        return Path(root)
    return Path(os.environ.get("LINEARNETS_DATA") or Path.home() / ".cache" / "linearnets")


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download_file(url: str, dest, sha256: str, *, timeout: float = 30.0) -> Path:
    """Fetch ``url`` into ``dest`` atomically; the file appears only if its SHA-256 matches."""
    dest = Path(dest)
    h = hashlib.sha256()
    try:
        with atomic_path(dest) as tmp:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                expected_len = response.headers.get("Content-Length")
                got = 0
                for block in iter(lambda: response.read(1 << 16), b""):
                    h.update(block)
                    out.write(block)
                    got += len(block)
                if expected_len is not None and got != int(expected_len):
                    raise DownloadError(f"{url}: interrupted after {got} of {expected_len} bytes")
            if h.hexdigest() != sha256:
                raise ChecksumError(f"{url}: SHA-256 {h.hexdigest()} does not match the expected "
                                    f"{sha256}; the file was not kept")
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError, http.client.HTTPException) as e:
        if isinstance(e, DownloadError):
            raise
        raise DownloadError(f"could not download {url}: {getattr(e, 'reason', e)}") from None
    return dest


def _find_local(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def fetch(name: str, root=None, *, download: bool = True, timeout: float = 30.0) -> Path:
    """Make sure the four IDX files of ``name`` are in ``data_home(root)/name``; return that folder."""
    if name not in DATASETS:
        raise DownloadError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    spec = DATASETS[name]
    folder = data_home(root) / name
    missing = [f for f in spec["files"] if _find_local(folder, f) is None]
    if missing and download:
        folder.mkdir(parents=True, exist_ok=True)
        errors = []
        for fname in list(missing):
            for mirror in spec["mirrors"]:
                try:
                    download_file(mirror + fname, folder / fname, spec["files"][fname], timeout=timeout)
                    _record_download(folder, fname, spec["files"][fname])
                    missing.remove(fname)
                    break
                except (DownloadError, ChecksumError) as e:
                    errors.append(str(e))
        if missing and errors and all("SHA-256" in e for e in errors):
            raise ChecksumError("; ".join(errors[-2:]))
    if missing:
        urls = " ".join(spec["mirrors"][0] + f for f in missing)
        raise DownloadError(
            f"{name}: missing {', '.join(missing)} in {folder} and could not download them "
            f"(offline?). Download {urls} and put the files (gzip or raw) in {folder}")
    return folder


def verify(name: str, root=None) -> dict[str, str]:
    """The state of every file of ``name`` in the cache: "ok", "missing", or "bad" (a .gz file whose
    SHA-256 is not the known one; a raw file that is not a valid IDX file)."""
    folder = data_home(root) / name
    result = {}
    for fname, digest in DATASETS[name]["files"].items():
        path = _find_local(folder, fname)
        if path is None:
            result[fname] = "missing"
        elif path.name.endswith(".gz"):
            result[fname] = "ok" if sha256_file(path) == digest else "bad"
        else:
            try:
                read_idx(path)
                result[fname] = "ok"
            except FormatError:
                result[fname] = "bad"
    return result


MANIFEST = ".linearnets-downloads.json"


def _record_download(folder: Path, fname: str, sha256: str) -> None:
    """Remember a verified download (its size and SHA-256), so later loads can check the cache."""
    path = folder / MANIFEST
    try:
        known = json.loads(path.read_text())
        known = known if isinstance(known, dict) else {}
    except (OSError, ValueError):
        known = {}
    known[fname] = {"size": (folder / fname).stat().st_size, "sha256": sha256}
    atomic_write_bytes(path, json.dumps(known, indent=1).encode())


def _checked(name: str, folder: Path, fname: str) -> Path:
    """A cached file, verified as it is loaded when we downloaded it ourselves: its size, then its
    SHA-256. (Files put in the folder by hand are checked by :func:`parse_idx`: magic, header, size.)"""
    path = _find_local(folder, fname)
    try:
        entry = json.loads((folder / MANIFEST).read_text()).get(path.name)
    except (OSError, ValueError, AttributeError):
        entry = None
    if isinstance(entry, dict) and (path.stat().st_size != entry.get("size")
                                    or sha256_file(path) != entry.get("sha256")):
        raise ChecksumError(f"{path}: the cached file changed since it was downloaded and verified (damaged or "
                            f"replaced); delete it and run `linearnets data download {name}`")
    return path


def _load(name: str, root, split: str, download: bool) -> Dataset:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = fetch(name, root, download=download)
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(_checked(name, folder, f"{prefix}-images-idx3-ubyte.gz"))
    labels = read_idx(_checked(name, folder, f"{prefix}-labels-idx1-ubyte.gz"))
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise FormatError(f"{folder}: images {images.shape} and labels {labels.shape} do not match "
                          "(expected (n, rows, cols) and (n,))")
    n, rows, cols = images.shape
    X = images.reshape(n, rows * cols).astype(np.float32) / 255.0
    return Dataset(X, labels.astype(np.int64), name=name, task="classification",
                   class_names=DATASETS[name]["classes"], image_shape=(rows, cols))


def load_fashion_mnist(root=None, split: str = "train", download: bool = True) -> Dataset:
    """Fashion-MNIST (the book's dataset): 28×28 clothing images → 10 classes, pixels in [0, 1]."""
    return _load("fashion-mnist", root, split, download)


def load_mnist(root=None, split: str = "train", download: bool = True) -> Dataset:
    """MNIST handwritten digits: 28×28 images → 10 classes, pixels in [0, 1]."""
    return _load("mnist", root, split, download)
