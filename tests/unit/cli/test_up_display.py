"""What `up`'s display says of an apply's stream: a failed reconcile's error once (the
daemon's "error" event for it and the apply's end name the same error, and which of
the two arrives first is a race); pulls and builds unless told to be quiet."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from stackd.cli.cmd_up import apply, hidden_progress

ERROR = "service 'app' asks for platform linux/s390x, which this host cannot run"


class _Stream:
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def stream(self, method: str, path: str, **_: Any) -> Iterator[dict[str, Any]]:
        yield from self.items


def _run(items: list[dict[str, Any]], capsys: pytest.CaptureFixture[str],
         hidden: tuple[str, ...] = ()) -> tuple[bool, str]:
    _, ok = apply(_Stream([{"accepted": {"project": "plat"}}, *items]), {}, hidden=hidden)
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


def test_quiet_pull_and_quiet_build_leave_out_their_progress_lines(
        capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    def progress(message: str) -> dict[str, Any]:
        return {"event": {"type": "progress", "container": "image x", "state": "working",
                          "message": message}}

    stream = [progress("pull: download x 1 MiB"), progress("build: STEP 1/2 RUN make"),
              progress("app-1: create — new service"), {"done": {"result": "ok"}}]
    for flags, shown in (({}, {"pull", "build", "create"}),
                         ({"quiet_pull": True}, {"build", "create"}),
                         ({"quiet_build": True}, {"pull", "create"}),
                         ({"quiet_pull": True, "quiet_build": True}, {"create"})):
        ok, err = _run(stream, capsys, hidden_progress(argparse.Namespace(**flags)))
        assert ok
        assert {w for w in ("pull", "build", "create") if f"{w}" in err} == shown, (flags, err)


def test_a_lifecycle_verbs_terminal_failure_is_said_once(
        capsys: pytest.CaptureFixture[str]) -> None:
    from stackd.cli.cmd_lifecycle import lifecycle

    ok = lifecycle(_Stream([{"event": {"type": "error", "message": f"reconcile failed: {ERROR}"}},
                            {"event": {"type": "error", "message": "disk full"}},
                            {"done": {"result": "terminal", "error": ERROR}}]),
                   "plat", "start", {})
    err = capsys.readouterr().err
    assert not ok and err.count("asks for platform") == 1, err
    assert "error: disk full" in err and f"stackd: plat: start: {ERROR}" in err
