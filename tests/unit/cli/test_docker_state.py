"""One rule for the state word every reader shows: ps, ls and the console agree."""

from __future__ import annotations

from stackd.cli.cmd_ls import summarise
from stackd.cli.cmd_ps import command_text, docker_fields, status_text
from stackd.cli.humanize import ago, human_duration
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


def test_durations_read_as_dockers() -> None:
    assert [human_duration(s) for s in (0, 0.9, 1, 59, 60, 119, 120, 3599)] == [
        "Less than a second", "Less than a second", "1 second", "59 seconds",
        "About a minute", "About a minute", "2 minutes", "59 minutes"]
    hour, day = 3600, 86400
    assert [human_duration(s) for s in (hour, 1.49 * hour, 1.5 * hour, 47 * hour,
                                        2 * day, 13 * day, 14 * day, 59 * day, 60 * day,
                                        729 * day, 730 * day)] == [
        "About an hour", "About an hour", "2 hours", "47 hours", "2 days", "13 days",
        "2 weeks", "8 weeks", "2 months", "24 months", "2 years"]


def test_a_stopped_container_says_how_long_ago_it_exited() -> None:
    row = {"state": "exited", "exit_code": 3, "finished_at": 100.0}
    assert status_text(row, 105.0) == "Exited (3) 5 seconds ago"
    assert status_text({**row, "oom_killed": True, "exit_code": 137}, 220.0) == \
        "Exited (137, OOM killed) 2 minutes ago"
    assert status_text({**row, "restarting": True}, 101.0) == "Restarting (3) 1 second ago"
    assert status_text({"state": "exited", "exit_code": 0}, 5.0) == "Exited (0)"
    assert status_text({"state": "running", "started_at": 5.0}, 5.2) == \
        "Up Less than a second"


def test_the_command_column_is_quoted_and_cut_as_composes() -> None:
    row = {"command": ["sh", "-c", "httpd -f -p 8080"]}
    assert command_text(row, True) == '"sh -c httpd -f -p 8…"'
    assert command_text(row, False) == '"sh -c httpd -f -p 8080"'
    assert command_text({"command": ["echo", '"hi"']}, True) == '"echo \\"hi\\""'
    fields = docker_fields({**row, "id": "p-web-1-0a", "name": "p-web-1", "state": "running",
                            "image": "busybox:1.36", "created_at": 1000.0})
    assert (fields["Image"], fields["Created"]) == ("busybox:1.36", 1000)
    assert fields["Command"] == "sh -c httpd -f -p 8080"  # JSON: the words, as Compose's


def test_an_images_age_reads_as_dockers() -> None:
    assert ago("2024-01-02T03:04:05Z", 1704164645.0 + 3 * 86400) == "3 days ago"
    assert ago(None, 0) == ago("not a time", 0) == "N/A"
