"""examples/webapp end to end: up, the published port, ps, logs, exec, plan, env change,
scale, self-healing, down -v leaving nothing."""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.request

import pytest
from e2e_helpers import restart_daemon
from support.psrows import ps_rows

pytestmark = [pytest.mark.root, pytest.mark.slow]


def get(url: str, timeout: float = 2) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def url(cli) -> str:
    """The web front, on the host port the fixture chose."""
    return f"http://127.0.0.1:{cli.environ['WEBAPP_PORT']}/"


def ps(cli, *args: str) -> list[dict]:
    return ps_rows(cli("ps", "--format", "json", *args).stdout)


def by_service(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["service"], []).append(r)
    return out


def wait_for(predicate, timeout: float = 15, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout}s")


def test_webapp_lifecycle(webapp) -> None:
    cli = webapp
    before = cli("plan").stdout
    assert "web-1: create" in before and "db-1: create" in before

    t0 = time.monotonic()
    cli("up", "-d")
    print(f"up -d: {time.monotonic() - t0:.2f}s")
    assert "<h1>stackd webapp</h1>" in get(url(cli))

    running = by_service(ps(cli))
    assert sorted(running) == ["api", "db", "web"]  # migrate ran and exited
    events = [json.loads(x) for x in
              cli("events", "--no-follow", "--since", "0", "--json").stdout.splitlines()]
    started = {e["container"] for e in events if e["type"] == "start"}
    assert started == {"webapp-db-1", "webapp-migrate-1", "webapp-api-1", "webapp-web-1"}
    assert any(e["type"] == "health" and e["container"] == "webapp-db-1"
               and e["message"] == "healthy" for e in events)
    every = by_service(ps(cli, "-a"))
    assert every["migrate"][0]["state"] == "exited"
    assert every["migrate"][0]["exit_code"] == 0
    assert running["web"][0]["ports"] == [f"0.0.0.0:{cli.environ['WEBAPP_PORT']}->80/tcp"]
    table = cli("ps").stdout.splitlines()
    assert table[0].split() == ["NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS",
                                "PORTS"]  # Compose's
    (web,) = [line for line in table if line.startswith("webapp-web-1 ")]
    assert web.split()[1] == "stackd-demo/busybox:latest" and " ago " in web, web
    assert running["web"][0]["Image"] == "stackd-demo/busybox:latest"

    # The stack already matches: plan says so; up runs the one-shot migrate again, as
    # Compose's does, and leaves every running container as it is.
    assert "nothing to do" in cli("plan").stdout
    before = [r["id"] for r in ps(cli)]
    again = cli("up", "-d")
    assert "migrate-1: start — exited (code 0)" in again.stderr, again.stderr
    assert "create" not in again.stderr and "recreate" not in again.stderr
    assert [r["id"] for r in ps(cli)] == before
    # It ran again, and reached db by name (a start of an exited container had no
    # resolv.conf: "wget: bad address 'db:5432'", exit 1).
    wait_for(lambda: cli("logs", "migrate").stdout.count("ready") == 2
             and by_service(ps(cli, "-a"))["migrate"][0]["exit_code"] == 0, timeout=20)
    # stable (but for the texts "Up N seconds" and "N seconds ago", which a second
    # boundary between the two listings changes)
    timed = ("Status", "RunningFor")
    assert [{k: v for k, v in r.items() if k not in timed} for r in ps(cli)] == \
        [{k: v for k, v in r.items() if k not in timed} for r in ps(cli)]
    assert [r["id"] for r in ps(cli)] == [r["id"] for r in ps(cli)]

    # exec runs in the container (its own hostname, its env).
    r = cli("exec", "-T", "api", "sh", "-c", "echo $DB_URL")
    assert r.stdout.strip() == "http://db:5432"
    r = cli("exec", "-T", "api", "sh", "-c", "exit 7", check=False)
    assert r.returncode == 7
    # migrate wrote into the shared volume, db reads it.
    assert cli("exec", "-T", "db", "cat", "/data/schema_version").stdout.strip() == "1"

    # The web front's access log holds the request made above, under its name.
    logs = cli("logs", "--no-color", "web").stdout.splitlines()
    assert any(re.fullmatch(r"webapp-web-1  \| \[?[0-9a-f.:]+\]?:[0-9]+: response:200", line)
               for line in logs), logs
    r = cli("logs", "--no-color", "migrate")
    assert "webapp-migrate-1  | ready" in r.stdout

    # An environment change recreates only the service that uses it.
    ids = {r["service"]: r["id"] for r in ps(cli)}
    plan = cli("plan", LOG_LEVEL="debug").stdout
    assert plan.strip().splitlines() == [
        line for line in plan.strip().splitlines() if line.startswith("api-1: recreate")]
    assert "LOG_LEVEL" in plan
    cli("up", "-d", LOG_LEVEL="debug")
    after = {r["service"]: r["id"] for r in ps(cli)}
    assert after["api"] != ids["api"]
    assert after["db"] == ids["db"] and after["web"] == ids["web"]

    # Scale 1 → 3 → 1: slots added and removed, highest index first; the rest untouched.
    cli("up", "-d", "--scale", "api=3", LOG_LEVEL="debug")
    apis = sorted(r["name"] for r in by_service(ps(cli))["api"])
    assert apis == ["webapp-api-1", "webapp-api-2", "webapp-api-3"]
    assert {r["service"]: r["id"] for r in ps(cli) if r["service"] != "api"} == {
        k: v for k, v in after.items() if k != "api"}
    cli("up", "-d", "--scale", "api=1", LOG_LEVEL="debug")
    assert [r["name"] for r in by_service(ps(cli))["api"]] == ["webapp-api-1"]

    cli("down", "-v")
    assert ps(cli, "-a") == []
    assert ps_rows(cli("ps", "--format", "json", "--all-projects", "-a").stdout) == []


def test_killed_container_is_brought_back(webapp) -> None:
    cli = webapp
    cli("up", "-d")
    web = by_service(ps(cli))["web"][0]
    t0 = time.monotonic()
    os.kill(web["pid"], signal.SIGKILL)

    def back() -> bool:
        rows = by_service(ps(cli)).get("web", [])
        return bool(rows) and rows[0]["pid"] != web["pid"] and rows[0]["state"] == "running"

    wait_for(back, timeout=10)
    print(f"time to heal after kill -9: {time.monotonic() - t0:.2f}s")
    assert "<h1>stackd webapp</h1>" in wait_for(lambda: _try_get(url(cli)))
    # Healed, it still finds its neighbours by name: the respawn had no resolv.conf or
    # hosts file ("bad address 'api'" after every crash).
    r = cli("exec", "-T", "web", "wget", "-q", "-O", "-", "http://api:8081/health")
    assert '"status": "ok"' in r.stdout
    events = cli("events", "--no-follow", "--since", "0", "--json").stdout.splitlines()
    kinds = [(e["type"], e.get("container")) for e in map(json.loads, events)]
    assert ("die", "webapp-web-1") in kinds
    assert ("restart", "webapp-web-1") in kinds


def _try_get(url: str) -> str | None:
    try:
        return get(url, timeout=1)
    except OSError:
        return None


def test_deleted_bridge_is_made_again(webapp) -> None:
    import subprocess as sp
    from pathlib import Path

    from stackd.cli.client import Client

    cli = webapp
    cli("up", "-d")
    with Client(cli.roots, autostart=False) as c:
        bridge = {n["key"]: n["bridge"] for n in c.get("/v1/networks")}["webapp_frontend"]
    web_pid = by_service(ps(cli))["web"][0]["pid"]
    t0 = time.monotonic()
    sp.run(["ip", "link", "del", bridge], check=True)

    def healed() -> bool:
        rows = by_service(ps(cli)).get("web", [])
        return (Path("/sys/class/net", bridge).exists() and bool(rows)
                and rows[0]["pid"] != web_pid and _try_get(url(cli)) is not None)

    wait_for(healed, timeout=15)
    print(f"time to heal after ip link del {bridge}: {time.monotonic() - t0:.2f}s")
    events = [json.loads(x) for x in
              cli("events", "--no-follow", "--since", "0", "--json").stdout.splitlines()]
    assert any(e["type"] == "heal" and bridge in e["message"] for e in events)


def _web(cli) -> dict:
    return by_service(ps(cli))["web"][0]


def _wait_healed(cli, web: dict, t0: float, what: str, word: str) -> None:
    def healed() -> bool:
        rows = by_service(ps(cli)).get("web", [])
        return (bool(rows) and rows[0]["pid"] != web["pid"] and rows[0]["state"] == "running"
                and _try_get(url(cli)) is not None)

    wait_for(healed, timeout=15)
    print(f"time to heal after {what}: {time.monotonic() - t0:.2f}s")
    events = [json.loads(x) for x in
              cli("events", "--no-follow", "--since", "0", "--json").stdout.splitlines()]
    heals = [e for e in events if e["type"] == "heal" and e.get("container") == web["id"]]
    assert any(word in e["message"] for e in heals), heals


def test_removed_cgroup_is_made_again(webapp) -> None:
    from pathlib import Path

    from stackd import hostnames
    from stackd.runtime.cgroups import host_mounts
    from stackd.runtime.cgroups.v1 import CONTROLLERS

    cli = webapp
    cli("up", "-d")
    web = _web(cli)
    mounts = host_mounts()
    rel = hostnames.cgroup_relpath(cli.roots.id, web["id"])
    tops = ({mounts.v1[c] for c in CONTROLLERS if c in mounts.v1} if mounts.v1
            else {mounts.v2})
    t0 = time.monotonic()
    # What someone tidying cgroups by hand does: move the processes out, rmdir.
    for top in sorted(tops):
        d = Path(top, rel)
        for pid in (d / "cgroup.procs").read_text().split():
            try:
                (Path(top) / "cgroup.procs").write_text(pid)
            except OSError:
                pass  # exited meanwhile
        d.rmdir()
    _wait_healed(cli, web, t0, "rmdir of its cgroups", "cgroup")


def test_removed_netns_is_made_again(webapp) -> None:
    import subprocess as sp

    from stackd.netbridge.netns import netns_path

    cli = webapp
    cli("up", "-d")
    web = _web(cli)
    path = netns_path(cli.roots.run, web["id"])
    t0 = time.monotonic()
    sp.run(["umount", str(path)], check=True)
    path.unlink()
    _wait_healed(cli, web, t0, "umount + rm of its netns", "network namespace")


def test_deleted_veth_is_made_again(webapp) -> None:
    import subprocess as sp

    from stackd.daemon.desired_store import db_path
    from stackd.state.allocations import Allocations
    from stackd.state.db import StateDB

    cli = webapp
    cli("up", "-d")
    web = _web(cli)
    db = StateDB.open(db_path(cli.roots.state))
    try:
        veth = Allocations(db).addresses()
        veth = next(a.host_ifname for a in veth if a.container_id == web["id"])
    finally:
        db.close()
    t0 = time.monotonic()
    sp.run(["ip", "link", "del", veth], check=True)
    _wait_healed(cli, web, t0, f"ip link del {veth}", "veth")


def _first_line(proc, timeout: float) -> str:  # type: ignore[no-untyped-def]
    """The first line `proc` writes to its stdout pipe, waiting at most `timeout`."""
    import select

    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"no output within {timeout} s"
    return str(proc.stdout.readline())


def test_up_attached_stops_on_ctrl_c(webapp) -> None:
    import subprocess as sp
    import sys

    cli = webapp
    up = sp.Popen([sys.executable, "-m", "stackd", "up"], cwd=cli.cwd, env=cli.env(),
                  stdout=sp.PIPE, stderr=sp.PIPE, text=True, stdin=sp.DEVNULL)
    try:
        assert "<h1>stackd webapp</h1>" in wait_for(
            lambda: _try_get(url(cli)), timeout=60)
        # Attached once the stack's output comes through (from its start, as compose's
        # `up`); a Ctrl-C before that would land in the apply, a different path.
        first = _first_line(up, timeout=60)
        assert first.startswith("webapp-"), first
        up.send_signal(signal.SIGINT)
        _, err = up.communicate(timeout=60)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    assert up.returncode == 130, err
    assert "stopping webapp (Ctrl-C)" in err, err
    rows = ps(cli, "-a")
    assert {r["service"] for r in rows} == {"db", "migrate", "api", "web"}
    assert [r["name"] for r in rows if r["state"] == "running"] == []
    # Not even the reconcile of every stored stack a new daemon starts with brings a
    # user's stop back, though every service says restart: unless-stopped.
    restart_daemon(cli, "webapp", stopped=[r["name"] for r in rows if r["service"] != "migrate"])
    assert [r["name"] for r in ps(cli, "-a") if r["state"] == "running"] == []
    assert _try_get(url(cli)) is None


def test_down_releases_the_attachment_of_a_container_never_created(webapp) -> None:
    """What a daemon killed between network connect and container create leaves: a
    netns, a veth and an address for an id the runtime never had."""
    import subprocess as sp

    import trio

    from stackd.daemon.desired_store import db_path
    from stackd.netbridge import Networks
    from stackd.netbridge.model import Attachment
    from stackd.state.db import StateDB

    cli = webapp
    cli("up", "-d")
    ghost = "webapp-web-9-0123abcd"

    async def half_connect() -> str:
        nets = Networks(cli.roots, StateDB.open(db_path(cli.roots.state)))
        path = await nets.create_netns(ghost)
        [addr] = await nets.attach(ghost, path, [Attachment("webapp_frontend")])
        return addr.host_ifname

    veth = trio.run(half_connect)
    assert sp.run(["ip", "link", "show", veth], capture_output=True).returncode == 0
    r = cli("down", "-v", check=False)
    assert r.returncode == 0, r.stderr
    assert sp.run(["ip", "link", "show", veth], capture_output=True).returncode != 0
    events = [json.loads(x) for x in
              cli("events", "--no-follow", "--since", "0", "--json").stdout.splitlines()]
    assert any(e["type"] == "heal" and e.get("container") == ghost for e in events)
