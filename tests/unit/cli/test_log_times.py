"""`logs --since/--until`: docker's three ways to write a time."""

from __future__ import annotations

import pytest

from stackd.cli.cmd_logs import parse_time
from stackd.errors import UsageError

NOW = 1_764_928_800.0  # 2025-12-05T10:00:00Z


@pytest.mark.parametrize(("text", "at"), [
    ("1764928000", 1_764_928_000.0),
    ("1764928000.5", 1_764_928_000.5),
    ("42s", NOW - 42), ("10m", NOW - 600), ("1h30m", NOW - 5400), ("500ms", NOW - 0.5),
    ("2025-12-05T09:00:00Z", NOW - 3600),
    ("2025-12-05T10:00:00+01:00", NOW - 3600),
])
def test_parse_time(text: str, at: float) -> None:
    assert parse_time(text, NOW) == pytest.approx(at)


@pytest.mark.parametrize("text", ["yesterday", "10x", "", "1h-5m"])
def test_what_is_no_time_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="is not a time"):
        parse_time(text, NOW)
