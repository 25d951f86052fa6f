"""``linearnets lab --serve``: the playgrounds on a local Bokeh server.

Binds 127.0.0.1 unless ``host`` says otherwise, picks a free port when none is given, prints the
URL, opens a browser only where one can be shown, serves the static lab report (if one exists) at
``/report/`` so playgrounds and verdicts link to each other, answers ``/status`` with the live
sessions and runs, and stops cleanly on Ctrl-C.
"""

from __future__ import annotations

import gc
import json
import os
import socket
import sys
import webbrowser
from pathlib import Path

import torch
from bokeh.application import Application
from bokeh.application.handlers.function import FunctionHandler
from bokeh.server.server import Server
from tornado.web import RequestHandler, StaticFileHandler

from ..errors import ConfigError
from . import compute
from .apps import APPS, EXECUTOR, PLAYGROUNDS, REGISTRY, SHUTDOWN


class StatusHandler(RequestHandler):
    def get(self):
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps({**REGISTRY.snapshot(), "playgrounds": list(PLAYGROUNDS)}))


class ReportHandler(StaticFileHandler):
    """The static lab report, looked up at each request (a report written later is served on reload)."""

    def write_error(self, status_code, **kwargs):
        if status_code == 404:
            folder = self.root
            self.write(f"<p>No lab report in {folder}. Run <code>linearnets lab --quick --out {folder}</code> "
                       "and reload; the playgrounds work without it.</p>")
        else:
            super().write_error(status_code, **kwargs)


def free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def can_open_browser() -> bool:
    """A browser can be shown: a desktop session (macOS, Windows, or a display on Linux)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def make_server(host: str = "127.0.0.1", port: int | None = None, report: str | Path = "lab-report") -> Server:
    """The Bokeh server of the playgrounds (not started)."""
    if port is not None and not 0 < port < 65536:
        raise ConfigError(f"--port {port} is out of range: choose 1 … 65535, or leave it out for a free port")
    try:
        port = port or free_port(host)
    except OSError as e:
        raise ConfigError(f"cannot listen on {host}: {e.strerror or e}") from None
    report = Path(report)
    handler = (r"/report/(.*)", ReportHandler, {"path": str(report), "default_filename": "index.html"})
    if host in ("0.0.0.0", "::", ""):
        origins = {"*"}                            # any address of this machine: pages come from anywhere
    else:
        origins = {f"{'[' + h + ']' if ':' in h else h}:{port}" for h in (host, "localhost", "127.0.0.1")}
    apps = {path: Application(FunctionHandler(fn)) for path, fn in APPS.items()}
    try:
        return Server(apps, address=host, port=port, allow_websocket_origin=sorted(origins),
                      # a page's session lives until its websocket has been gone 5 s: long enough for BokehJS
                      # to connect (~2 s here), short enough that a closed tab's run stops soon
                      check_unused_sessions_milliseconds=500, unused_session_lifetime_milliseconds=5000,
                      extra_patterns=[(r"/status", StatusHandler), handler])
    except OSError as e:
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None


def serve(host: str = "127.0.0.1", port: int | None = None, report: str | Path = "lab-report",
          open_browser: bool = True, out=None) -> int:
    out = out or (lambda line: print(line, flush=True))
    server = make_server(host, port, report)
    # The playgrounds' problems are small (digits: 1 347 × 64): torch's intra-op threads only add waiting, and
    # on a busy machine (every core taken) they made a run ~10× slower (30 epochs: 0.9 s instead of 0.09 s).
    # One thread per run; runs of different tabs still use different cores.
    torch.set_num_threads(1)
    compute.digits_split()                 # the data the first pages need, loaded before the first page asks
    compute.regression_surface()
    # Bokeh runs a full garbage collection (twice) each time it discards a closed tab's session; over everything
    # torch, scikit-learn and Bokeh hold, that took ~0.3 s each, during which the server answered no one (a
    # page opened then waited for it). What exists now lives as long as the server: the collector skips it.
    gc.freeze()
    server.start()
    url = f"http://{'[' + host + ']' if ':' in host else host}:{server.port}/"
    out(f"linearnets interactive lab: {url}  (Ctrl-C stops it)")
    if host not in ("127.0.0.1", "localhost", "::1"):
        out(f"note: listening on {host}, reachable from other machines; there is no authentication")
    if open_browser and can_open_browser():
        server.io_loop.add_callback(lambda: webbrowser.open(url))
    try:
        server.io_loop.start()
    except KeyboardInterrupt:
        out("stopping…")
    finally:
        SHUTDOWN.set()
        server.stop()
        EXECUTOR.shutdown(wait=False, cancel_futures=True)
    return 0
