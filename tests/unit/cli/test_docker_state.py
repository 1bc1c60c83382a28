"""One rule for the state word every reader shows: ps, ls and the console agree."""

from __future__ import annotations

from stackd.cli.cmd_ls import summarise
from stackd.cli.cmd_ps import status_text
from stackd.daemon.rows import docker_state
from stackd.ui.pages import container_health

ROWS = [
    {"project": "p", "index": 1, "state": "running"},
    {"project": "p", "index": 2, "state": "running", "paused": True},
    {"project": "p", "index": 3, "state": "exited", "exit_code": 1, "restarting": True},
    {"project": "p", "index": 4, "state": "exited", "exit_code": 0},
]


def test_every_reader_says_paused_and_restarting_as_docker_does() -> None:
    assert [docker_state(r) for r in ROWS] == ["running", "paused", "restarting", "exited"]
    assert [container_health(r) for r in ROWS] == ["running", "paused", "restarting",
                                                  "exited"]
    (row,) = summarise([], ROWS, all=True)
    assert row["status"] == "exited(1), paused(1), restarting(1), running(1)"
    assert status_text(ROWS[2], 0) == "Restarting (1)"
