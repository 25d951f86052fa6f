"""Writes that are whole or absent: atomic files, atomic folders, output checks, a run's lock.

* A file is written to a temporary name in the same folder, synced, then renamed: a reader (or a
  crash) never sees a half-written file under its final name.
* A folder of outputs (a model: weights, card, metrics, curves) is written into a sibling
  temporary folder, synced, then exchanged with the old folder in one rename
  (``renameat2(RENAME_EXCHANGE)``): after any failure the previous folder is there unchanged.
* Outputs are checked *before* work starts (writable, not a file, not the input).
* Files are created with the permissions the umask allows (``mkstemp``'s 0600 is widened).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import math
import os
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import LinearnetsError, OutputError

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json", "atomic_path", "atomic_folder",
           "check_output_folder", "check_output_file", "RunLock", "output_error", "jsonable"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def output_error(e: OSError, path=None, what: str = "write") -> OutputError:
    """An OSError of the machine (full disk, read-only, no permission, …) → one clear line."""
    where = path if path is not None else (e.filename or "the output")
    hint = {errno.ENOSPC: "no space left on the device; free some or choose another place",
            errno.EDQUOT: "disk quota exceeded; free some space or choose another place",
            errno.EROFS: "the file system is read-only; choose another place",
            errno.EACCES: "permission denied; choose a place you can write to",
            errno.EPERM: "operation not permitted; choose a place you can write to",
            errno.ENOTDIR: "a part of the path is a file, not a folder",
            errno.EISDIR: "it is a folder; give a file name",
            errno.ENAMETOOLONG: "the name is too long"}.get(e.errno, e.strerror or type(e).__name__)
    return OutputError(f"cannot {what} {where}: {hint}")


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ""):
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
        os.fchmod(fd, 0o666 & ~_umask())
        os.close(fd)
    except OSError as e:
        raise output_error(e, path) from None
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and not isinstance(e, LinearnetsError):
            raise output_error(e, path) from None
        raise


@contextmanager
def atomic_folder(path: str | os.PathLike):
    """Yield a new, empty sibling folder to fill; on success it replaces ``path`` as a unit.

    Entries of the old folder that the new one lacks (checkpoints, the user's own files) are
    hard-linked into it first, so nothing is lost; then the two folders are exchanged in one
    rename and the old one is removed. If anything fails — or the process is killed — before the
    exchange, ``path`` is exactly as it was; after it, ``path`` holds the complete new folder. On a
    failure the temporary folder is removed (a killed run leaves it for :func:`remove_stale`).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        os.chmod(tmp, 0o777 & ~_umask())
    except OSError as e:
        raise output_error(e, path) from None
    try:
        yield tmp
        if path.is_dir():
            _link_missing(path, tmp)
        _fsync_tree(tmp)
        if path.is_dir():
            _exchange(tmp, path)                  # tmp now holds the old folder
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.rename(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OutputError):                    # name the folder the user asked for, not ours
            raise OutputError(str(e).replace(str(tmp), str(path))) from None
        if isinstance(e, OSError) and not isinstance(e, LinearnetsError):
            raise output_error(e, path) from None
        raise


def remove_stale(path: str | os.PathLike) -> None:
    """Remove temporary files and folders left beside ``path`` by a killed writer (call it only
    while holding ``path``'s :class:`RunLock`)."""
    path = Path(path)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def _link_missing(old: Path, new: Path) -> None:
    for entry in old.iterdir():
        target = new / entry.name
        if target.exists() or entry.name.startswith("."):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, target, copy_function=os.link)
        else:
            os.link(entry, target, follow_symlinks=False)


def _fsync_tree(folder: Path) -> None:
    for root, _, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(root))


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> None:
    """Swap two paths in one step (Linux ``renameat2``); elsewhere, two renames."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is not None:
        if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(err, os.strerror(err), str(b))
    aside = b.with_name(f".{b.name}.{os.getpid()}.old.tmp")
    os.rename(b, aside)                                   # a kill here leaves the old folder aside
    os.rename(a, b)
    os.rename(aside, a)


@contextmanager
def quiet_native_stderr():
    """Send file descriptor 2 — where PyTorch's C++ side logs — to /dev/null while the block runs."""
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def check_output_folder(path: str | os.PathLike, *, inputs=()) -> Path:
    """Before any work: ``path`` can become a folder of outputs — it is not a file, no part of it
    is a file, it is not one of ``inputs``, and the place is writable. OutputError otherwise."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"--out {path} is a file; give a folder (it will hold the model and its metrics)")
    for given in inputs:
        if given is not None and Path(given).exists() and _same(Path(given), path):
            raise OutputError(f"--out {path} is the input data; choose another folder")
    _probe_writable(path if path.is_dir() else _existing_parent(path), path)
    return path


def check_output_file(path: str | os.PathLike, *, inputs=()) -> Path:
    """Before any work: ``path`` can be written as a file (not a folder, not an input, writable)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name")
    for given in inputs:
        if given is not None and Path(given).exists() and path.exists() and _same(Path(given), path):
            raise OutputError(f"{path} is the input file; write the output elsewhere")
    _probe_writable(_existing_parent(path), path)
    return path


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _existing_parent(path: Path) -> Path:
    for parent in [path.parent, *path.parent.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"cannot write {path}: {parent} is a file, not a folder")
            return parent
    return Path(".")


def _probe_writable(folder: Path, path: Path) -> None:
    try:
        fd, probe = tempfile.mkstemp(prefix=".linearnets-probe.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise output_error(e, path) from None


class RunLock:
    """An exclusive lock on an output folder for one run: ``.NAME.lock`` beside it, held with
    ``flock`` (released by the kernel when the process dies, so a lock left by a killed run is
    simply taken over). A second run on the same folder is refused at once, naming the holder."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.file = self.path.parent / f".{self.path.name}.lock"
        self.fd: int | None = None

    def __enter__(self) -> "RunLock":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise output_error(e, self.path) from None
        while True:
            try:
                fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
            except OSError as e:
                raise output_error(e, self.file, "create the lock") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
                os.close(fd)
                raise OutputError(f"{self.path} is in use by another run ({holder}); wait for it to finish "
                                  "or choose another --out") from None
            try:                                          # the file we locked is still the lock file
                same = os.path.samestat(os.fstat(fd), os.stat(self.file))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%H:%M:%S')}".encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            self.file.unlink(missing_ok=True)
            os.close(self.fd)                             # releases the lock
            self.fd = None


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX: fsync the folder); best effort elsewhere."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=True) + "\n")


def jsonable(obj):
    """NumPy values, arrays and non-finite floats → plain JSON values (inf/nan as strings)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else str(v)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj
