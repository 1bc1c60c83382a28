"""Compose durations and byte sizes become typed values, and print back the same."""

from __future__ import annotations

from datetime import timedelta

import pytest

from stackd.spec.units import format_duration, parse_bytes, parse_duration


@pytest.mark.parametrize(("text", "seconds"), [
    ("10s", 10), ("1m30s", 90), ("500ms", 0.5), ("1h", 3600), ("1h2m3s", 3723),
    ("1.5s", 1.5), ("250us", 0.00025), ("0s", 0), ("2m", 120), ("90", 90), (5, 5), (2.5, 2.5),
])
def test_durations(text: str | int | float, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["", "1x", "s", "1m30", "-5s", "ten seconds", True, -1, [1]])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize(("seconds", "text"), [
    (90, "1m30s"), (0.5, "500ms"), (0, "0s"), (3600, "1h"), (3723.25, "1h2m3s250ms"), (1, "1s"),
])
def test_duration_spelling_round_trips(seconds: float, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(("text", "size"), [
    ("512m", 512 * 2**20), ("1g", 2**30), ("1G", 2**30), ("1gb", 2**30), ("100k", 102400),
    ("100kb", 102400), ("1.5g", 3 * 2**29), ("42", 42), ("42b", 42), (4096, 4096), ("-1", -1),
    ("2t", 2 * 2**40),
])
def test_byte_sizes(text: str | int, size: int) -> None:
    assert parse_bytes(text) == size


@pytest.mark.parametrize("bad", ["", "1x", "m", "1.2.3g", True, None, [1]])
def test_bad_byte_sizes(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_bytes(bad)
