"""One validator for the numbers a user types: finite, of the right kind, inside a range.

Every command line option and every `--set` value that is a number goes through `check`, so
`--lr nan`, `--fps inf`, a negative learning rate or a seed beyond 64 bits is one clear line
(`UserError`) instead of a traceback deep inside torch, numpy or dask, or a silently broken run.
"""

from __future__ import annotations

import math
import numbers

from cwm.errors import UserError

# Seeds feed numpy (any size), torch (< 2**64) and Python's random; one bound for all of them.
MAX_SEED = 2 ** 63 - 1


def check(name: str, value, *, low: float | None = None, high: float | None = None,
          low_open: bool = False, integer: bool = False):
    """`value` when it is a finite number (an int if `integer`) in [low, high] (low excluded if
    `low_open`); otherwise `UserError("NAME must be ...")`. None passes through (an unset option);
    an empty `name` leaves the message to start at "must be" (click names the option itself)."""
    if value is None:
        return None
    kind = "an integer" if integer else "a number"
    name = f"{name} " if name else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or (integer and not isinstance(value, numbers.Integral)):
        raise UserError(f"{name}must be {kind}, got {value!r}")
    if not math.isfinite(value):
        raise UserError(f"{name}must be a finite number, got {value}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and value > high
    if too_low or too_high:
        raise UserError(f"{name}must be {_range(low, high, low_open)}, got {value}")
    return value


def _range(low, high, low_open) -> str:
    def fmt(x):
        return f"{x:g}" if isinstance(x, float) else str(x)
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{fmt(low)}, {fmt(high)}]"
    if low is not None:
        return f"{'>' if low_open else '>='} {fmt(low)}"
    return f"<= {fmt(high)}"


_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


def split_setting(item: str, usage: str) -> tuple[str, str, str, str]:
    """`--set SECTION.FIELD=TEXT` -> (key, section, field, text), key = "SECTION.FIELD";
    UserError `--set ITEM: expected USAGE` when the item has no `=` or no `.`."""
    key, sep, text = item.partition("=")
    key = key.strip()
    section, dot, field = key.partition(".")
    if not sep or not dot:
        raise UserError(f"--set {item!r}: expected {usage}")
    return key, section, field, text.strip()


def parse_setting(key: str, text: str, current):
    """`--set KEY=TEXT`'s value as the type of the setting's `current` value (bool, int, float or
    str); UserError if it does not parse, and numbers go through `check` (nan, inf refused)."""
    kind = type(current)
    try:
        if kind is bool:
            if text.lower() not in _TRUE | _FALSE:
                raise ValueError
            return text.lower() in _TRUE
        value = kind(text)
    except ValueError:
        raise UserError(f"--set {key}={text}: expected {kind.__name__}") from None
    if kind in (int, float):
        check(f"--set {key}", value, integer=kind is int)
    return value
