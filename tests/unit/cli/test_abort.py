"""Which container ends an `up --abort-on-container-exit` run, and with what code."""

from __future__ import annotations

from typing import Any

from stackd.cli.abort import Abort, exit_code, first_exit

SINCE = 1000.0
EXIT, FAILURE = Abort(on_failure_only=False, code_from=None), Abort(True, None)


def row(name: str, state: str, started: float, code: int | None = None, *,
        service: str = "", index: int = 1, oneoff: bool = False) -> dict[str, Any]:
    return {"id": name, "name": name, "service": service or name, "index": index,
            "state": state, "started_at": started, "exit_code": code, "oneoff": oneoff}


def test_the_first_container_to_exit_since_the_up_ends_it() -> None:
    rows = [row("db", "running", SINCE + 1), row("b", "exited", SINCE + 3, 1),
            row("a", "exited", SINCE + 2, 0)]
    assert first_exit(rows, SINCE, set(), EXIT)["name"] == "a"  # type: ignore[index]
    assert first_exit(rows, SINCE, set(), FAILURE)["name"] == "b"  # type: ignore[index]


def test_what_exited_before_the_up_or_a_one_off_does_not_count() -> None:
    rows = [row("migrate", "exited", SINCE - 60, 0), row("run", "exited", SINCE + 1, 0,
                                                         oneoff=True)]
    assert first_exit(rows, SINCE, set(), EXIT) is None


def test_a_container_seen_running_counts_whenever_it_started() -> None:
    seen: set[str] = set()
    assert first_exit([row("db", "running", SINCE - 60)], SINCE, seen, EXIT) is None
    ended = first_exit([row("db", "exited", SINCE - 60, 137)], SINCE, seen, EXIT)
    assert ended is not None and ended["exit_code"] == 137


def test_exit_code_from_waits_for_the_services_first_replica() -> None:
    assert exit_code([row("t1", "running", SINCE, service="t")], "t") is None
    rows = [row("t2", "exited", SINCE, 9, service="t", index=2),
            row("t1", "exited", SINCE, 4, service="t", index=1)]
    assert exit_code(rows, "t") == 4


def test_an_exit_not_recorded_yet_is_waited_for_not_taken_for_a_0() -> None:
    """Between the monitor reaping a process and recording its exit, the row says
    exited with no code: that ended --abort-on-container-failure runs with code 0."""
    rows = [row("tests", "exited", SINCE + 1, None)]
    assert first_exit(rows, SINCE, set(), FAILURE) is None
    assert first_exit(rows, SINCE, set(), EXIT) is None
    assert exit_code([row("t1", "exited", SINCE, None, service="t")], "t") is None
    assert first_exit([row("tests", "exited", SINCE + 1, 3)], SINCE, set(),
                      FAILURE) is not None
