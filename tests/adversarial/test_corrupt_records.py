"""Garbled or truncated records of a running container under the run dir: it stays
listed, its process is found by its cgroup, nothing of it is released as a stray, the
bad file is quarantined and reported, and no volume a live process uses is removed."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

import pytest
from e2e_helpers import CLI
from support.psrows import ps_rows

from stackd.cli.client import Client
from stackd.runtime.statefile import process_start_time

pytestmark = pytest.mark.root

STACK = """\
name: rec
services:
  app:
    image: stackd-demo/busybox:latest
    pull_policy: never
    stop_signal: SIGKILL
    command: [sh, -c, 'echo kept > /data/file; exec sleep 1000']
    volumes: [data:/data]
  other:
    image: stackd-demo/busybox:latest
    pull_policy: never
    stop_signal: SIGKILL
    command: [sleep, '1000']
volumes:
  data: {}
"""


def wait_for(what: str, predicate: Callable[[], object], timeout: float = 20) -> object:
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        assert time.monotonic() < deadline, f"not in {timeout:.0f}s: {what}"
        time.sleep(0.1)


def rows(cli: CLI, *args: str) -> dict[str, dict]:
    out = ps_rows(cli("ps", "-a", "--format", "json", *args).stdout)
    return {r["id"]: r for r in out}


def events(cli: CLI) -> list[dict]:
    r = cli("events", "--all-projects", "--no-follow", "--json", "--since", "0")
    return [json.loads(line) for line in r.stdout.splitlines()]


def has_address(cli: CLI, service: str) -> bool:
    r = cli("exec", service, "ip", "-4", "addr", "show", "eth0", check=False)
    return r.returncode == 0 and "inet " in r.stdout


@pytest.fixture
def app(cli: CLI) -> dict:
    (cli.cwd / "compose.yaml").write_text(STACK)
    cli("up", "-d")
    row = next(r for r in rows(cli).values() if r["service"] == "app")
    assert row["state"] == "running" and row["pid"]
    wait_for("app to write its volume", lambda: (
        cli.roots.state / "volumes" / "rec_data" / "data" / "file").exists())
    return row


def test_garbled_state_and_truncated_spec_are_quarantined(cli: CLI, app: dict) -> None:
    run = cli.roots.run / "containers" / app["id"]
    (run / "state.json").write_text('{"pid": 12')  # garbled mid-write
    spec = (run / "spec.json").read_bytes()
    (run / "spec.json").write_bytes(spec[:len(spec) // 3])  # truncated

    # Still listed, in its project, running, with the pid its cgroup holds, and why —
    # unless the daemon's record watch has quarantined it in this very instant.
    row = rows(cli)[app["id"]]
    assert row["state"] == "running" and row["pid"] == app["pid"], row
    assert (row["problem"] and "state.json is not valid JSON" in row["problem"]
            and "spec.json is not valid JSON" in row["problem"]) or any(
        e["attrs"].get("fault") == "unreadable_record" for e in events(cli)), row
    assert process_start_time(app["pid"]) is not None

    # Quarantined (moved aside, replaced) and reported once.
    heal = wait_for("the quarantine event", timeout=40, predicate=lambda: [
        e for e in events(cli) if e["attrs"].get("fault") == "unreadable_record"])
    assert heal[0]["type"] == "heal", heal  # type: ignore[index]
    aside = sorted(p.name.split(".corrupt-")[0] for p in run.iterdir() if ".corrupt-" in p.name)
    assert aside == ["spec.json", "state.json"], list(run.iterdir())
    assert json.loads((run / "state.json").read_text())["pid"] == app["pid"]
    assert json.loads((run / "spec.json").read_bytes()) == json.loads(spec)
    assert rows(cli)[app["id"]]["problem"] is None

    # Not taken for a stray: a reconcile keeps it and its network as they are.
    cli("up", "-d")
    assert rows(cli)[app["id"]]["pid"] == app["pid"]
    assert has_address(cli, "app")

    r = cli("down", "-v")
    assert r.returncode == 0
    assert rows(cli) == {}
    assert process_start_time(app["pid"]) is None


def test_a_record_beyond_repair_keeps_its_volume(cli: CLI, app: dict) -> None:
    run = cli.roots.run / "containers" / app["id"]
    for f in (run / "state.json", run / "spec.json",
              cli.roots.state / "containers" / app["id"] / "spec.json"):
        f.write_text("\0garbage")

    # Listed (its labels are unknown now: among all projects' containers) with why.
    row = rows(cli, "--all-projects")[app["id"]]
    assert row["state"] == "running" and row["pid"] == app["pid"], row
    assert "spec.json" in row["problem"] and "state.json" in row["problem"], row
    assert "unreadable record" in cli("ps", "-a", "--all-projects").stdout
    wait_for("the unreadable record reported", timeout=40, predicate=lambda: any(
        e["type"] == "error" and e["attrs"].get("fault") == "unreadable_record"
        for e in events(cli)))

    # down -v removes what it knows, and not the volume the live process uses.
    r = cli("down", "-v", check=False)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert f"volume rec_data is in use by container {app['id']} (pid {app['pid']})" \
        in r.stderr, r.stderr
    volume = cli.roots.state / "volumes" / "rec_data" / "data"
    assert (volume / "file").read_text() == "kept\n"
    assert process_start_time(app["pid"]) is not None
    assert app["id"] in rows(cli, "--all-projects")

    # The container can still be stopped and removed by its id (the process by its
    # cgroup, its network attachment with it); the down, retried meanwhile, finishes.
    with Client(cli.roots, autostart=False) as c:
        c.post(f"/v1/containers/{app['id']}/remove")
        wait_for("its process to end", lambda: process_start_time(app["pid"]) is None)
        wait_for("the down to finish", lambda: c.get("/v1/stacks") == [], timeout=60)
    assert not volume.exists()
    assert not os.path.exists(run)
    assert rows(cli, "--all-projects") == {}
