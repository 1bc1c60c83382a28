"""`up` says a failed reconcile's error once: the daemon's "error" event for it and the
apply's end name the same error, and which of the two arrives first is a race."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from stackd.cli.cmd_up import apply

ERROR = "service 'app' asks for platform linux/s390x, which this host cannot run"


class _Stream:
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def stream(self, method: str, path: str, **_: Any) -> Iterator[dict[str, Any]]:
        yield from self.items


def _run(items: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> tuple[bool, str]:
    _, ok = apply(_Stream([{"accepted": {"project": "plat"}}, *items]), {})
    return ok, capsys.readouterr().err


def test_a_terminal_failure_is_said_once(capsys: pytest.CaptureFixture[str]) -> None:
    ok, err = _run([{"event": {"type": "error", "message": f"reconcile failed: {ERROR}"}},
                    {"done": {"result": "terminal", "error": ERROR}}], capsys)
    assert not ok
    assert err.count("asks for platform") == 1, err
    assert f"stackd: plat: {ERROR}" in err


def test_other_errors_and_retries_are_still_said(capsys: pytest.CaptureFixture[str]) -> None:
    ok, err = _run([
        {"event": {"type": "error", "message": "reconcile failed, retrying in 0.1s: boom"}},
        {"event": {"type": "error", "message": "reconcile failed: an earlier one"}},
        {"done": {"result": "terminal", "error": ERROR}}], capsys)
    assert not ok
    assert "retrying in 0.1s: boom" in err and "reconcile failed: an earlier one" in err
    assert err.count("asks for platform") == 1
    ok, err = _run([{"event": {"type": "error", "message": "reconcile failed: earlier"}},
                    {"done": {"result": "ok"}}], capsys)
    assert ok and "reconcile failed: earlier" in err
