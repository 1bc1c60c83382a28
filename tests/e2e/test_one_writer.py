"""One writer per stack, seen from the host: the lifecycle verbs are requests to the
stack's controller, and supervision follows a container whatever verb started it.

Each test is a regression test of a symptom reported in issue #14.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import CLI, torn_down
from support.psrows import ps_rows

from stackd.roots import Roots

pytestmark = [pytest.mark.root, pytest.mark.slow]

IMAGE = "    image: stackd-demo/busybox:latest\n    pull_policy: never\n"


@pytest.fixture
def stack(no_leaks: Roots, demo_image: str, tmp_path: Path) -> Iterator[CLI]:
    work = tmp_path / "small"
    work.mkdir()
    with torn_down(CLI(no_leaks, work)) as cli:
        yield cli


def ps(cli: CLI, *args: str) -> list[dict]:
    return ps_rows(cli("ps", "--format", "json", *args).stdout)


def events(cli: CLI) -> list[dict]:
    out = cli("events", "--no-follow", "--json", "--since", "0").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def wait_for(predicate, timeout: float = 20, step: float = 0.1):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout}s")


def test_stop_then_start_leaves_the_container_supervised(stack: CLI) -> None:
    # Before: after stop + start nothing watched the container any more: no health
    # checks, and a killed container with `restart: always` stayed dead.
    (stack.cwd / "compose.yaml").write_text(
        "name: small\nservices:\n  app:\n" + IMAGE +
        "    command: [sleep, '1000']\n    stop_signal: SIGKILL\n    restart: always\n"
        "    healthcheck:\n      test: [CMD, 'true']\n      interval: 1s\n"
        "      start_interval: 1s\n")
    stack("up", "-d")
    wait_for(lambda: ps(stack)[0]["health"] == "healthy")
    stack("stop")
    assert [r["state"] for r in ps(stack, "-a")] == ["exited"]
    stack("start")
    (row,) = wait_for(lambda: [r for r in ps(stack) if r["health"] == "healthy"])
    os.kill(row["pid"], signal.SIGKILL)
    again = wait_for(lambda: [r for r in ps(stack) if r["pid"] not in (None, row["pid"])])
    assert again[0]["state"] == "running"
    assert "nothing to do" in stack("plan").stdout + stack("plan").stderr


def test_up_and_restart_bring_a_stopped_service_back(stack: CLI) -> None:
    # Before: `up -d` said "nothing to do" and `restart` of a stopped container was a
    # silent no-op.
    (stack.cwd / "compose.yaml").write_text(
        "name: small\nservices:\n  app:\n" + IMAGE +
        "    command: [sleep, '1000']\n    stop_signal: SIGKILL\n"
        "  other:\n" + IMAGE + "    command: [sleep, '1000']\n    stop_signal: SIGKILL\n")
    stack("up", "-d")
    stack("stop", "app")
    assert {r["service"]: r["state"] for r in ps(stack, "-a")} == {
        "app": "exited", "other": "running"}
    stack("up", "-d")
    assert {r["service"]: r["state"] for r in ps(stack, "-a")} == {
        "app": "running", "other": "running"}
    stack("stop", "app")
    stack("restart", "app")
    assert {r["service"]: r["state"] for r in ps(stack, "-a")} == {
        "app": "running", "other": "running"}
    # `rm` of a stopped container: gone until the next `up`, not made again at once
    stack("stop", "app")
    stack("rm", "app")
    time.sleep(1)
    assert [r["service"] for r in ps(stack, "-a")] == ["other"]
    stack("up", "-d")
    assert {r["service"]: r["state"] for r in ps(stack, "-a")} == {
        "app": "running", "other": "running"}


def _ordered_stack(cli: CLI) -> Path:
    """db ← api ← web; each appends its name to a host file when SIGTERM comes, the
    dependents only after a pause, so stopping all at once would log db first."""
    order = cli.cwd / "order"
    order.mkdir()

    def svc(name: str, pause: str, deps: list[str]) -> str:
        dep = f"    depends_on: [{', '.join(deps)}]\n" if deps else ""
        return (f"  {name}:\n" + IMAGE + dep + "    volumes: ['./order:/order']\n"
                f"    command: [sh, -c, 'trap \"sleep {pause}; echo {name} >> /order/log; "
                "exit 0\" TERM; sleep 1000 & wait']\n")

    (cli.cwd / "compose.yaml").write_text(
        "name: small\nservices:\n" + svc("db", "0", []) + svc("api", "0.3", ["db"])
        + svc("web", "0.6", ["api"]))
    return order / "log"


def test_stop_and_down_go_dependents_first(stack: CLI) -> None:
    # Before: every service was signalled at once.
    log = _ordered_stack(stack)
    stack("up", "-d")
    stack("stop")
    assert log.read_text().split() == ["web", "api", "db"]
    stack("start")
    wait_for(lambda: len(ps(stack)) == 3)
    log.write_text("")
    stack("down")
    assert log.read_text().split() == ["web", "api", "db"]


def test_a_missing_image_is_reported_as_itself(stack: CLI) -> None:
    # Before: ExceptionGroup('Exceptions from Trio nursery', [ImageNotFoundError(...)]).
    (stack.cwd / "compose.yaml").write_text(
        "name: small\nservices:\n"
        "  a:\n    image: nosuch/one:1\n    pull_policy: never\n"
        "  b:\n    image: nosuch/two:1\n    pull_policy: never\n")
    r = stack("up", "-d", check=False)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "nosuch/" in out, out
    assert "ExceptionGroup" not in out and "Trio" not in out, out


def test_a_spec_error_found_at_create_is_terminal(stack: CLI) -> None:
    # Before: flattened into a ConflictError string, and so retried with backoff
    # forever (every 30 s at the cap).
    (stack.cwd / "compose.yaml").write_text(
        "name: small\nservices:\n  app:\n" + IMAGE +
        "    command: [sleep, '1000']\n    user: nosuchuser\n")
    r = stack("up", "-d", check=False)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "nosuchuser" in out, out
    time.sleep(2)  # a retried reconcile would fail at 0.1, 0.3, 0.7, 1.5 s
    failures = [e for e in events(stack) if e["type"] == "error"]
    assert len(failures) == 1, failures
    assert "retrying" not in failures[0]["message"]


def test_start_never_races_the_reconcile_into_a_fresh_netns(stack: CLI) -> None:
    # Before: a `start` deleted and created a container outside the stack's reconcile;
    # a reconcile in between saw the slot empty, created it again ("scale 2 → 3"), and
    # one process ended up in a namespace with only `lo`.
    (stack.cwd / "compose.yaml").write_text(
        "name: small\nservices:\n  app:\n" + IMAGE +
        "    command: [sleep, '1000']\n    stop_signal: SIGKILL\n    restart: always\n"
        "    deploy:\n      replicas: 3\n")
    stack("up", "-d")
    since = max(e["seq"] for e in events(stack))
    for _ in range(3):
        stack("stop")
        stack("start")
        rows = wait_for(lambda: [r for r in ps(stack) if r["pid"]] if len(ps(stack)) == 3
                        else None)
        for r in rows:
            devices = Path(f"/proc/{r['pid']}/net/dev").read_text()
            assert "eth0" in devices, (r["name"], devices)
    creates = [e for e in events(stack) if e["seq"] > since and e["type"] == "progress"
               and " create " in f" {e['message'].split(':', 1)[-1]} "]
    assert creates == []


def metrics(cli: CLI) -> str:
    import httpx

    from stackd.daemon.paths import socket_path

    with httpx.Client(transport=httpx.HTTPTransport(uds=str(socket_path(cli.roots))),
                      base_url="http://stackd", timeout=10) as raw:
        return raw.get("/metrics").text


def test_restart_metrics_count_by_reason(stack: CLI) -> None:
    # Before: stackd_container_restarts_total{reason} never had a sample.
    (stack.cwd / "compose.yaml").write_text(
        "name: small\nservices:\n  app:\n" + IMAGE +
        "    command: [sleep, '1000']\n    stop_signal: SIGKILL\n    restart: always\n")
    stack("up", "-d")
    (row,) = ps(stack)
    os.kill(row["pid"], signal.SIGKILL)
    wait_for(lambda: [r for r in ps(stack) if r["pid"] not in (None, row["pid"])])
    text = wait_for(lambda: (t := metrics(stack)) and "stackd_container_restarts_total{" in t
                    and t)
    assert ('stackd_container_restarts_total{project="small",reason="exit",service="app"} 1.0'
            in text), text
    assert 'stackd_containers{project="small",state="running"} 1.0' in text, text


def test_events_since_and_until_take_times_as_docker_does(stack: CLI) -> None:
    (stack.cwd / "compose.yaml").write_text(
        "name: small\nservices:\n  app:\n" + IMAGE +
        "    command: [sleep, '1000']\n    stop_signal: SIGKILL\n")
    stack("up", "-d")
    every = events(stack)
    assert every

    def since(*args: str) -> list[dict]:
        out = stack("events", "--no-follow", "--json", *args).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    assert since("--since", "1h") == every  # all of them happened in the last hour
    assert since("--since", str(int(every[-1]["time"]) + 2)) == []  # a Unix time after
    # A cut between two events far enough apart for the microseconds written.
    i = max(i for i in range(1, len(every)) if every[i]["time"] - every[i - 1]["time"] > 1e-3)
    until = f"{(every[i - 1]['time'] + every[i]['time']) / 2:.6f}"
    kept = since("--since", "0", "--until", until)
    assert kept == [e for e in every if e["time"] < float(until)] and every[i] not in kept
    # --until ahead: follow until then, and exit 0.
    t0 = time.monotonic()
    r = stack("events", "--until", str(int(time.time()) + 2))
    assert r.returncode == 0 and time.monotonic() - t0 < 10


def test_events_json_carries_composes_action_id_and_attributes(stack: CLI) -> None:
    """`docker compose events --json | jq 'select(.action == "die")'`: stackd's lines
    had no action, and a health change's status was in its message only."""
    (stack.cwd / "compose.yaml").write_text(
        "name: small\nservices:\n  app:\n" + IMAGE +
        "    command: [sleep, '1000']\n    stop_signal: SIGKILL\n"
        "    healthcheck: {test: [CMD, 'true'], interval: 1s}\n"
        "  job:\n" + IMAGE + "    command: [sh, -c, 'exit 3']\n")
    stack("up", "-d")

    def actions() -> dict[str, list[dict]]:
        by: dict[str, list[dict]] = {}
        for e in events(stack):
            by.setdefault(e["id"], []).append(e)
        return by

    deadline = time.monotonic() + 30
    while "health_status: healthy" not in [e["action"] for e in actions().get("small-app-1", [])]:
        assert time.monotonic() < deadline, actions()
        time.sleep(0.2)
    stack("down")
    by = actions()
    facts = {name: [e for e in got if e["action"] != "progress"] for name, got in by.items()}
    assert [e["action"] for e in facts["small-app-1"]] == [
        "create", "start", "health_status: healthy", "destroy"]
    assert [e["action"] for e in facts["small-job-1"]] == ["create", "start", "die", "destroy"]
    assert facts["small-job-1"][2]["attributes"] == {"name": "small-job-1", "exitCode": "3"}
    assert all(e["service"] == "app" for e in by["small-app-1"])


def test_events_of_the_services_named_only(stack: CLI) -> None:
    # Compose's `events SERVICE…`: refused as an unknown argument before.
    (stack.cwd / "compose.yaml").write_text(
        "name: small\nservices:\n" + "".join(
            f"  {name}:\n" + IMAGE + "    command: [sleep, '1000']\n    stop_signal: SIGKILL\n"
            for name in ("app", "db")))
    stack("up", "-d")

    def of(*services: str) -> list[dict]:
        out = stack("events", "--no-follow", "--json", "--since", "0", *services).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    db = of("db")
    assert db and {e["service"] for e in db} == {"db"}
    assert {e["type"] for e in db} >= {"start"}
    assert {e["service"] for e in of("db", "app")} == {"app", "db"}
    r = stack("events", "--no-follow", "web", check=False)
    assert r.returncode != 0 and "no such service: web in project small" in r.stderr
