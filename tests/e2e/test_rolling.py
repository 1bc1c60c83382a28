"""Rolling updates of a 3-replica web service behind its published port, with a
request loop running through the update: what a client on the host sees."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import CLI, DEMO_IMAGE, torn_down
from support.freeaddrs import free_port
from support.psrows import ps_rows
from support.rolling import RequestLoop, served, wait_serving

from stackd.roots import Roots

# Each replica serves "<VERSION> <token of its own>". VERSION=broken serves nothing,
# so its healthcheck fails. busybox httpd as PID 1 ignores SIGTERM: a stopped replica
# drains for its stop_grace_period, then is killed.
STACK = """\
name: roll
services:
  web:
    image: {image}
    command: ["sh", "-c", "mkdir -p /www && [ $$VERSION != broken ] &&
      echo $$VERSION $$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \\\\n')
      > /www/index.html; exec httpd -f -p 80 -h /www"]
    environment:
      VERSION: ${{VERSION}}
    stop_grace_period: 1s
    ports: ["127.0.0.1:${{ROLL_PORT}}:80"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]
      interval: 1s
      timeout: 2s
      retries: 1
    deploy:
      replicas: 3
      update_config:
        parallelism: {parallelism}
        order: {order}
        monitor: 1s
        failure_action: {failure_action}
"""


def write_stack(cli: CLI, *, order: str, parallelism: int = 1,
                failure_action: str = "rollback") -> None:
    (cli.cwd / "compose.yaml").write_text(STACK.format(
        image=DEMO_IMAGE, order=order, parallelism=parallelism,
        failure_action=failure_action))


@pytest.fixture
def roll(no_leaks: Roots, demo_image: str, tmp_path: Path) -> Iterator[CLI]:
    work = tmp_path / "roll"
    work.mkdir()
    with torn_down(CLI(no_leaks, work, {"ROLL_PORT": str(free_port()),
                                        "VERSION": "one"})) as cli:
        yield cli


def versions(bodies: list[str]) -> list[str]:
    return [b.split()[0] for b in bodies]


def tokens(bodies: list[str], version: str) -> set[str]:
    return {b.split()[1] for b in bodies if b.split()[0] == version}


def update_under_load(cli: CLI, version: str, *up: str, verb: str = "up"
                      ) -> tuple[RequestLoop, int, str]:
    """The request loop through `up -d` (or another verb); its exit code and output."""
    port = int(cli.environ["ROLL_PORT"])
    args = ("up", "-d", *up) if verb == "up" else (verb, *up)
    with RequestLoop(port) as loop:
        time.sleep(1.0)  # traffic before the update
        r = cli(*args, check=False, timeout=180, VERSION=version)
        time.sleep(1.0)  # and after
    return loop, r.returncode, r.stdout + r.stderr


@pytest.mark.parametrize("order", ["start-first", "stop-first"])
def test_a_rolling_update_fails_no_request(roll: CLI, order: str) -> None:
    write_stack(roll, order=order)
    roll("up", "-d", "--wait", timeout=120)
    wait_serving(int(roll.environ["ROLL_PORT"]), 3)
    before, failed = served(int(roll.environ["ROLL_PORT"]), 1.0)
    assert failed == [] and len(before) == 3, (before, failed)

    shown = roll("plan", VERSION="two").stdout
    for n in (1, 2, 3):
        assert (f"web-{n}: recreate — environment changed: VERSION (rolling update batch "
                f"{n}/3, {order})") in shown, shown
    # stop-first twice: the refused connection it once met (a replica killed before
    # it left the port's backends) needs load and luck; two updates double the chances.
    rounds = (("one", "two"), ("two", "three"))[:2 if order == "stop-first" else 1]
    for old, new in rounds:
        loop, code, shown = update_under_load(roll, new)
        assert code == 0, shown
        assert loop.failures == [], loop.failures[:5]
        seen = versions(loop.bodies)
        assert len(seen) > 100, len(seen)
        # Old answers, then a switch, then only new ones (no flapping back at the end).
        assert seen[0] == old and seen[-1] == new
        last_old = max(i for i, v in enumerate(seen) if v == old)
        assert all(v == new for v in seen[last_old + 1:])
        assert len(tokens(loop.bodies, old)) == 3  # every old replica served
        after, failed = served(int(roll.environ["ROLL_PORT"]), 1.0)
        assert failed == [], failed
        assert {b.split()[0] for b in after} == {new} and len(after) == 3, after
        # `up` (not a terminal here) showed the update batch by batch, in order.
        done = [line.split("batch ")[1][:3] for line in shown.splitlines()
                if "done" in line and "rolling update" not in line and "batch " in line]
        assert done == ["1/3", "2/3", "3/3"], shown


def test_a_broken_update_rolls_back_and_never_gets_traffic(roll: CLI) -> None:
    write_stack(roll, order="start-first")
    roll("up", "-d", "--wait", timeout=120)
    wait_serving(int(roll.environ["ROLL_PORT"]), 3)
    old = set(served(int(roll.environ["ROLL_PORT"]), 1.0)[0])
    assert len(old) == 3

    loop, code, _ = update_under_load(roll, "broken", "--wait")
    assert code != 0  # `up --wait` of a revision that was rolled back fails
    assert loop.failures == [], loop.failures[:5]
    assert set(loop.bodies) == old  # only the old replicas ever answered
    now, failed = served(int(roll.environ["ROLL_PORT"]), 1.0)
    assert failed == [] and set(now) == old, failed

    # The revision was rolled back by itself, and history and events say so.
    rows = json.loads(roll("history", "--format", "json").stdout)
    assert [(r["number"], r["cause"]) for r in rows] == [(1, "up"), (2, "up"), (3, "rollback")]
    assert rows[1]["outcome"] == "rolled back"
    deadline = time.monotonic() + 30
    while json.loads(roll("history", "--format", "json").stdout)[2]["outcome"] != "done":
        assert time.monotonic() < deadline, "the rollback revision never converged"
        time.sleep(0.5)
    events = [json.loads(line) for line in
              roll("events", "--json", "--since", "0", "--no-follow").stdout.splitlines()]
    rollbacks = [e for e in events if e["type"] == "rollback"]
    assert len(rollbacks) == 1 and "revision 2 rolled back" in rollbacks[0]["message"]
    assert "batch 1/3 (web-1) failed" in rollbacks[0]["message"]
    ps = roll("ps")
    assert "roll: revision 2 rolled back to revision 1 (now revision 3)" in ps.stderr
    assert "batch 1/3 (web-1) failed" in ps.stderr
    assert ps.stdout.count("(healthy)") == 3, ps.stdout  # the old ones, still up
    # Still only the old replicas, after the rollback revision's reconcile too.
    now, failed = served(int(roll.environ["ROLL_PORT"]), 1.0)
    assert failed == [] and set(now) == old, failed


def test_a_paused_update_stays_paused_until_resumed(roll: CLI) -> None:
    write_stack(roll, order="start-first", failure_action="pause")
    roll("up", "-d", "--wait", timeout=120)
    port = int(roll.environ["ROLL_PORT"])
    wait_serving(port, 3)
    old = set(served(port, 1.0)[0])

    loop, code, shown = update_under_load(roll, "broken")
    assert code != 0, shown  # the revision's update paused: `up` failed
    assert loop.failures == [] and set(loop.bodies) == old, loop.failures[:5]
    assert "update of web paused: batch 1/3 (web-1) failed" in shown, shown

    def paused_rows() -> list[str]:
        return [r["outcome"] for r in json.loads(roll("history", "--format",
                                                      "json").stdout)]

    assert paused_rows()[1].startswith("paused: update of web paused: batch 1/3")
    # Later passes (the failed one is retried, events, resyncs) run no batch again.
    time.sleep(4)
    ps = roll("ps", "--format", "json")
    assert sorted(r["name"] for r in ps_rows(ps.stdout)) == [
        "roll-web-1", "roll-web-2", "roll-web-3"]
    assert {r["health"] for r in ps_rows(ps.stdout)} == {"healthy"}
    assert "paused" in roll("ps").stderr
    now, failed = served(port, 1.0)
    assert failed == [] and set(now) == old, failed
    events = [json.loads(line) for line in
              roll("events", "--json", "--since", "0", "--no-follow").stdout.splitlines()]
    assert len([e for e in events if e["type"] == "pause"]) == 1
    creates = [e for e in events if e["type"] == "start" and e.get("slot") == "web-1"]

    # `stackd resume` goes on: the failed batch is tried again (and pauses again).
    r = roll("resume", check=False, timeout=120)
    assert r.returncode != 0 and "paused" in r.stderr, r.stderr
    events = [json.loads(line) for line in
              roll("events", "--json", "--since", "0", "--no-follow").stdout.splitlines()]
    assert len([e for e in events if e["type"] == "pause"]) == 2
    assert len([e for e in events if e["type"] == "start" and e.get("slot") == "web-1"]) \
        == len(creates) + 1
    now, failed = served(port, 1.0)
    assert failed == [] and set(now) == old, failed


def test_rollback_by_hand_returns_to_the_previous_revision_under_load(roll: CLI) -> None:
    write_stack(roll, order="start-first")
    roll("up", "-d", "--wait", timeout=120)
    wait_serving(int(roll.environ["ROLL_PORT"]), 3)
    roll("up", "-d", "--wait", timeout=120, VERSION="two")
    port = int(roll.environ["ROLL_PORT"])
    assert {b.split()[0] for b in served(port, 0.5)[0]} == {"two"}

    with RequestLoop(port) as loop:
        time.sleep(0.5)
        roll("rollback", timeout=180)
        time.sleep(0.5)
    assert loop.failures == [], loop.failures[:5]
    seen = versions(loop.bodies)
    assert seen[0] == "two" and seen[-1] == "one"
    rows = json.loads(roll("history", "--format", "json").stdout)
    assert [(r["cause"], r["outcome"]) for r in rows] == [
        ("up", "done"), ("up", "done"), ("rollback", "done")]

    # One service only: unknown ones are refused by name.
    r = roll("rollback", "nosuch", check=False)
    assert r.returncode != 0 and "service 'nosuch' is not in revision" in r.stderr
    roll("rollback", "web", timeout=180)  # back to "two", the revision before this one
    assert {b.split()[0] for b in served(port, 0.5)[0]} == {"two"}
