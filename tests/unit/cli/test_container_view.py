"""A container as Docker's `inspect` names it (cli/container_view.py), for `-f`."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackd.cli.container_view import ZERO_TIME, docker_container
from stackd.cli.goformat import render
from stackd.daemon.host_verbs import Attached, ContainerLinks
from stackd.errors import UsageError
from stackd.state.allocations import PortRow

ROW = {"id": "shop-web-1-ab12", "name": "shop-web-1", "state": "exited", "pid": 41,
       "paused": False, "restarting": False, "health": None, "exit_code": 137,
       "oom_killed": True, "started_at": 1.5e9, "finished_at": None, "created_at": 1.5e9,
       "image": "redis:7", "problem": None}
RECORD = {"spec": {"hostname": "web", "labels": {"a": "1"},
                   "process": {"args": ["redis-server", "--port", "7"], "env": ["A=1"],
                               "cwd": "/data", "user": "999", "init": True},
                   "mounts": [{"type": "volume", "target": "/data",
                               "source": "/s/volumes/shop_data/data", "readonly": False},
                              {"type": "bind", "target": "/etc/x", "source": "/srv/x",
                               "readonly": True}],
                   "resources": {"cpu_quota": 50_000, "cpu_period": 100_000,
                                 "memory": 2**20}}}
LINKS = ContainerLinks(
    attached=(Attached("shop_default", "10.0.0.5", 24, "10.0.0.1", "02:42:0a:00:00:05",
                       ("shop-web-1", "web")),),
    published=(PortRow("shop-web-1-ab12", "", 8080, "tcp", "10.0.0.5", 80),),
    volumes={"/s/volumes/shop_data/data": "shop_data"})


def test_a_stopped_container_reads_as_dockers_does() -> None:
    doc = docker_container(ROW, RECORD, LINKS)
    assert doc["Name"] == "/shop-web-1" and doc["Path"] == "redis-server"
    assert doc["Args"] == ["--port", "7"]
    assert doc["State"] == {
        "Status": "exited", "Running": False, "Paused": False, "Restarting": False,
        "OOMKilled": True, "Dead": False, "Pid": 0, "ExitCode": 137, "Error": "",
        "StartedAt": "2017-07-14T02:40:00.000000Z", "FinishedAt": ZERO_TIME,
        "Health": None}
    # A container that does not run publishes nothing, as Docker's; its networks stay.
    assert doc["NetworkSettings"]["Ports"] == {} and doc["HostConfig"]["PortBindings"] == {}
    assert doc["NetworkSettings"]["Networks"]["shop_default"]["IPAddress"] == "10.0.0.5"
    assert doc["HostConfig"]["NanoCpus"] == 500_000_000 and doc["HostConfig"]["Init"]
    assert render("{{range .Mounts}}{{.Type}}:{{.Name}}:{{.Mode}} {{end}}", [doc]) == (
        "volume:shop_data: bind::ro \n")


def test_a_running_one_has_its_ports_and_health() -> None:
    doc = docker_container({**ROW, "state": "running", "paused": True, "health": "unhealthy",
                            "exit_code": None}, RECORD, LINKS)
    assert doc["State"]["Status"] == "paused" and doc["State"]["Pid"] == 41
    assert doc["State"]["Health"] == {"Status": "unhealthy"} and doc["State"]["ExitCode"] == 0
    assert doc["NetworkSettings"]["Ports"] == {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}
    assert doc["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}


def test_a_field_it_does_not_have_is_refused_at_any_depth_as_dockers() -> None:
    """`{{.State.Stauts}}` printed an empty line, where Docker says it cannot
    evaluate the field: a script then compared "" and went on."""
    doc = docker_container(ROW, RECORD, LINKS)
    with pytest.raises(UsageError, match=r"no field 'Stauts' in \.State") as e:
        render("{{.State.Stauts}}", [doc])
    assert "Status" in (e.value.hint or "")
    with pytest.raises(UsageError, match=r"no field 'Cmd' in \.Config"):
        render("{{.Config.Cmd}}", [doc])  # stackd does not know it for certain
    with pytest.raises(UsageError, match=r"no field 'Nope'"):
        render("{{range .Mounts}}{{.Nope}}{{end}}", [doc])
    # Without a healthcheck, Health is there and unset: `if` is false, asking into it
    # is refused (Docker's nil pointer), naming the test to put first.
    assert render("{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}",
                  [doc]) == "none\n"
    with pytest.raises(UsageError, match=r"\.State\.Health is not set") as e:
        render("{{.State.Health.Status}}", [doc])
    assert "{{if .State.Health}}" in (e.value.hint or "")
    # A map's keys are data: one it lacks is nothing, as Go's.
    assert render("[{{.Config.Labels.nope}}][{{index .Config.Labels \"a\"}}]", [doc]) == (
        "[][1]\n")
    with pytest.raises(UsageError, match=r"\.Path is redis-server, which has no field"):
        render("{{.Path.Len}}", [doc])


def test_a_volume_is_named_from_its_directory_only(tmp_path: Path) -> None:
    from stackd.state.volumes import VolumeStore

    store = VolumeStore(None, tmp_path)  # type: ignore[arg-type]  # name_of reads no row
    assert store.name_of(store.path("shop_data")) == "shop_data"
    for other in (str(tmp_path / "volumes/shop_data"), str(tmp_path / "other/v/data"),
                  str(tmp_path / "volumes/a/b/data"), "/srv/data"):
        assert store.name_of(other) is None, other
