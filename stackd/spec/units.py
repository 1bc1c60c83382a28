"""Compose's duration (`1m30s`, `500ms`) and byte-size (`512m`, `1g`) syntax.

Durations follow Go's time.ParseDuration, which is what compose accepts; a bare number
is taken as seconds. Byte sizes follow docker's RAMInBytes: binary multiples, an
optional `b`, case-insensitive, fractions allowed (`1.5g`).
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
}
_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([kmgtp]?)(i?b?)", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_duration(value: object) -> timedelta:
    """`1m30s` → 90 s; `500ms`; `1h`; a bare int/float means seconds. Raises ValueError."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{value!r} is not a duration")
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a duration")
    text = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return timedelta(seconds=float(text))
    pos, total = 0, 0.0
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if m is None:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(
            f"{value!r} is not a duration (write it like 10s, 1m30s, 500ms or 1h)")
    return timedelta(seconds=total)


def format_duration(value: timedelta) -> str:
    """The shortest compose spelling: 90 s → `1m30s`, 0.5 s → `500ms`, 0 → `0s`."""
    us = round(value.total_seconds() * 1_000_000)
    if us == 0:
        return "0s"
    hours, rest = divmod(us, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds, rest = divmod(rest, 1_000_000)
    millis, micros = divmod(rest, 1000)
    out = ""
    if hours:
        out += f"{hours}h"
    if minutes:
        out += f"{minutes}m"
    if seconds:
        out += f"{seconds}s"
    if millis:
        out += f"{millis}ms"
    if micros:
        out += f"{micros}us"
    return out


def parse_bytes(value: object) -> int:
    """`512m` → 536870912; `1g`; `100k`; `1.5gb`; an int is bytes. Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a byte size")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a byte size")
    text = value.strip()
    if text == "-1":
        return -1
    m = _SIZE.fullmatch(text)
    if m is None:
        raise ValueError(f"{value!r} is not a byte size (write it like 512m, 1g or 100000)")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
