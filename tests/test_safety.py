"""Safe loading, output paths, and downloads from a hostile local server."""

import hashlib
import http.server
import json
import os
import pickle
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import linearnets as ln
from linearnets.data import idx

SRC = Path(ln.__file__).parent


class Boom:
    """A pickle payload that would create a file when unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_payload_is_refused(tmp_path):
    X, y = ln.data.load_digits()
    ln.SoftmaxRegression(epochs=1).fit(X, y).save(tmp_path / "m")
    marker = tmp_path / "executed"
    payload = pickle.dumps(Boom(marker))
    (tmp_path / "m" / "model.safetensors").write_bytes(payload)
    with pytest.raises(ln.ModelFileError):
        ln.load(tmp_path / "m")
    (tmp_path / "m" / "model.json").write_bytes(payload)
    with pytest.raises(ln.ModelFileError):
        ln.load(tmp_path / "m")
    assert not marker.exists()


def test_no_unpickling_anywhere_in_the_library():
    pattern = re.compile(r"pickle\.load|torch\.load\(|allow_pickle\s*=\s*True|cloudpickle|joblib\.load")
    offenders = [f"{p.relative_to(SRC)}:{i + 1}" for p in SRC.rglob("*.py")
                 for i, line in enumerate(p.read_text().splitlines()) if pattern.search(line)]
    assert offenders == []


def test_weights_that_disagree_with_the_card_are_refused(tmp_path):
    X, y = ln.data.load_digits()
    ln.SoftmaxRegression(epochs=1).fit(X, y).save(tmp_path / "a")
    ln.SoftmaxRegression(epochs=1).fit(X[:, :10], y).save(tmp_path / "b")
    (tmp_path / "a" / "model.safetensors").write_bytes((tmp_path / "b" / "model.safetensors").read_bytes())
    with pytest.raises(ln.ModelFileError, match="do not match the card"):
        ln.load(tmp_path / "a")


def test_outputs_stay_in_the_chosen_folder(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.standard_normal((60, 2)), columns=["../../escape", "/etc/passwd"])
    df["y"] = rng.integers(0, 2, 60)
    df.to_csv(tmp_path / "d.csv", index=False)
    out = tmp_path / "out"
    out.mkdir()
    outside = tmp_path / "outside.json"
    outside.write_text("keep")
    (out / "model.json").symlink_to(outside)                        # a planted link is replaced, not followed
    before = {p for p in tmp_path.rglob("*")}
    r = subprocess.run([sys.executable, "-m", "linearnets", "train", "--data", str(tmp_path / "d.csv"),
                        "--target", "y", "--out", str(out), "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    new = {p for p in tmp_path.rglob("*")} - before
    assert all(out in p.parents for p in new), new
    assert outside.read_text() == "keep" and not (out / "model.json").is_symlink()
    assert json.loads((out / "model.json").read_text())["feature_names"] == ["../../escape", "/etc/passwd"]


# --- downloads -------------------------------------------------------------------------------
class Handler(http.server.BaseHTTPRequestHandler):
    payload = b""

    def log_message(self, *a):
        pass

    def do_GET(self):
        body = type(self).payload
        if self.path.startswith("/truncated"):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if self.path.startswith("/slow"):
            time.sleep(3)
        if self.path.startswith("/corrupt"):
            body = bytes(b ^ 0xFF for b in body)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def server():
    Handler.payload = os.urandom(200_000)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", hashlib.sha256(Handler.payload).hexdigest()
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("kind,error,match", [
    ("truncated", ln.DownloadError, "interrupted|could not download"),
    ("corrupt", ln.ChecksumError, "SHA-256"),
    ("slow", ln.DownloadError, "timed out|could not download"),
])
def test_bad_downloads_leave_nothing_and_retry_works(tmp_path, server, kind, error, match):
    url, digest = server
    dest = tmp_path / "cache" / "file.gz"
    t0 = time.perf_counter()
    with pytest.raises(error, match=match):
        idx.download_file(f"{url}/{kind}.gz", dest, digest, timeout=1.0)
    assert time.perf_counter() - t0 < 10
    assert not dest.exists() and list(dest.parent.iterdir()) == []   # no final file, no temporary left
    idx.download_file(f"{url}/good.gz", dest, digest, timeout=5.0)     # the next run downloads again
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == digest
