"""How much memory a run may take, and a check before anything big is allocated.

The budget is half of the memory available when the check runs (Linux: ``MemAvailable`` of
/proc/meminfo), or ``$LINEARNETS_MEMORY_BUDGET`` bytes. A request over it is refused with a
ConfigError that says what needed the memory, how much, and what to do instead — before the
allocation, so a hostile or mistaken setting cannot take the machine down.
"""

from __future__ import annotations

import os

from .errors import ConfigError

__all__ = ["available_bytes", "budget_bytes", "require", "human"]


def available_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 8 << 30


def budget_bytes() -> int:
    override = os.environ.get("LINEARNETS_MEMORY_BUDGET")
    if override:
        try:
            return int(float(override))
        except ValueError:
            raise ConfigError(f"LINEARNETS_MEMORY_BUDGET={override!r} is not a number of bytes") from None
    return available_bytes() // 2


def human(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def require(nbytes: float, what: str, hint: str) -> None:
    """ConfigError unless ``nbytes`` fits the budget."""
    limit = budget_bytes()
    if nbytes > limit:
        raise ConfigError(f"{what} needs {human(nbytes)}, more than the {human(limit)} this run may use "
                          f"(half the available memory; $LINEARNETS_MEMORY_BUDGET); {hint}")
