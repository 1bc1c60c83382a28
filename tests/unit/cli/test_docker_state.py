"""One rule for the state word every reader shows: ps, ls and the console agree."""

from __future__ import annotations

from stackd.cli.cmd_ls import summarise
from stackd.cli.cmd_ps import docker_fields, status_text
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


def test_json_rows_carry_composes_publishers_for_scripts() -> None:
    row = {"id": "p-web-1-0a0b0c0d", "name": "p-web-1", "state": "running",
           "ports": ["0.0.0.0:18080->80/tcp", "127.0.0.1:5353->53/udp"]}
    assert docker_fields(row)["Publishers"] == [
        {"URL": "0.0.0.0", "TargetPort": 80, "PublishedPort": 18080, "Protocol": "tcp"},
        {"URL": "127.0.0.1", "TargetPort": 53, "PublishedPort": 5353, "Protocol": "udp"}]
    assert docker_fields({**row, "ports": []})["Publishers"] == []


def test_a_starting_health_check_reads_as_dockers() -> None:
    row = {"state": "running", "started_at": 100.0, "health": "starting"}
    assert status_text(row, 103.0) == "Up 3 seconds (health: starting)"
    assert status_text({**row, "health": "healthy"}, 103.0) == "Up 3 seconds (healthy)"
