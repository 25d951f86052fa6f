"""Settings checked by type and range in one place, for the API and the CLI alike.

Every check raises :class:`~linearnets.ConfigError` naming the setting, the value and what to
use instead (``Invalid learning rate: -1; use a positive number such as 0.1``). Integers must be
integers (``epochs=3.0`` is refused, as scikit-learn does; ``True`` is not an integer here),
numbers must be real and finite, choices must be one of their names.
"""

from __future__ import annotations

import math
import numbers

from .errors import ConfigError

__all__ = ["integer", "number", "choice", "flag", "seed", "fraction"]


def _label(name: str) -> str:
    return {"lr": "learning rate"}.get(name, name)


def integer(name: str, value, *, low: int = 1, high: int | None = None) -> int:
    """An integer in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"Invalid {name}: {value!r}; use an integer ≥ {low}"
                          + (" such as 3" if isinstance(value, float) and value == int(value) else ""))
    value = int(value)
    if value < low or (high is not None and value > high):
        span = f"between {low} and {high}" if high is not None else f"≥ {low}"
        raise ConfigError(f"Invalid {name}: {value}; use an integer {span}")
    return value


def number(name: str, value, *, low: float = 0.0, high: float = math.inf, low_open: bool = False,
           high_open: bool = False, example: str | None = None) -> float:
    """A real, finite number in the interval given (``low_open``/``high_open``: excluding the end)."""
    label = _label(name)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"Invalid {label}: {value!r}; use a number" + (f" such as {example}" if example else ""))
    value = float(value)
    ok = math.isfinite(value) and (value > low if low_open else value >= low) and \
        (value < high if high_open else value <= high)
    if not ok:
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        span = ("a positive number" if (low == 0 and low_open and high == math.inf) else
                "a non-negative number" if (low == 0 and high == math.inf) else
                f"a number in {lo}{low:g}, {high:g}{hi}")
        raise ConfigError(f"Invalid {label}: {value:g}; use {span}" + (f" such as {example}" if example else ""))
    return value


def choice(name: str, value, options) -> str:
    if not isinstance(value, str) or value not in options:
        raise ConfigError(f"Invalid {name}: {value!r}; choose one of {', '.join(options)}")
    return value


def flag(name: str, value) -> bool:
    if not isinstance(value, (bool, int)) or int(value) not in (0, 1):
        raise ConfigError(f"Invalid {name}: {value!r}; use True or False")
    return bool(value)


def seed(value) -> int:
    """A non-negative integer of any size (used at full width: seeds 1 and 2³² + 1 differ)."""
    return integer("seed", value, low=0)


def fraction(name: str, value) -> float:
    """A number strictly between 0 and 1."""
    return number(name, value, low=0.0, high=1.0, low_open=True, high_open=True, example="0.1")
