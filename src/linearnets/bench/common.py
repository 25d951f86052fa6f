"""Shared helpers of the benchmark scripts: timing, the reference workload, a table."""

from __future__ import annotations

import platform

import torch

from ..timing import median_time  # noqa: F401  (re-exported for the benchmarks)


def machine() -> str:
    return (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
            f"torch {torch.__version__}, python {platform.python_version()}")


def table(rows: list[tuple], headers: tuple) -> str:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


class PeakRSS:
    """Peak resident memory added while the block runs (Linux: VmHWM reset via clear_refs)."""

    def __enter__(self):
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.base = _status("VmRSS")
        except OSError:                                   # not Linux: no measurement
            self.base = None
        return self

    def __exit__(self, *exc):
        self.peak = float("nan") if self.base is None else _status("VmHWM") - self.base

    @property
    def mib(self) -> float:
        return self.peak / 1024


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])             # KiB
    raise KeyError(key)
