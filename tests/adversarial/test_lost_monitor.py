"""The runtime monitor SIGKILLed under running containers: a new monitor takes them
over (exits seen, output read again, stop/kill/remove working), and `down` removes
the stack completely."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable

import pytest
from e2e_helpers import CLI, stop_daemon
from support.psrows import ps_rows

from stackd.cli.client import Client
from stackd.runtime.statefile import process_start_time

pytestmark = pytest.mark.root

STACK = """\
name: lost
services:
  quiet:
    image: stackd-demo/busybox:latest
    pull_policy: never
    restart: always
    command: [sh, -c, 'trap "echo got-usr1" USR1; trap "exit 7" TERM; echo started;
              while true; do sleep 0.1; done']
  chatty:
    image: stackd-demo/busybox:latest
    pull_policy: never
    stop_signal: SIGKILL
    command: [sh, -c, 'while true; do echo chatter; done']
"""


def wait_for(what: str, predicate: Callable[[], object], timeout: float = 30) -> object:
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        assert time.monotonic() < deadline, f"not in {timeout:.0f}s: {what}"
        time.sleep(0.1)


def ps(cli: CLI) -> dict[str, dict]:
    rows = ps_rows(cli("ps", "-a", "--format", "json").stdout)
    return {r["service"]: r for r in rows}


def gone(pid: int) -> bool:
    """No such process, or only its zombie (reparented to an init that reaps late)."""
    return process_start_time(pid) is None


def kill_monitor(cli: CLI) -> int:
    pid = int((cli.roots.run / "monitor.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    wait_for("the monitor to die", lambda: gone(pid))
    return pid


def monitor_pid(cli: CLI) -> int | None:
    try:
        return int((cli.roots.run / "monitor.pid").read_text())
    except (FileNotFoundError, ValueError):
        return None


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        raw = f.read()
    return int(raw[raw.rindex(")") + 2:].split()[1])


def test_down_after_the_monitor_was_killed(cli: CLI) -> None:
    (cli.cwd / "compose.yaml").write_text(STACK)
    cli("up", "-d")
    pids = [r["pid"] for r in ps(cli).values()]
    assert all(pids) and len(pids) == 2
    kill_monitor(cli)

    r = cli("down", check=False, timeout=60)
    assert r.returncode == 0, r.stderr
    assert ps(cli) == {}
    for pid in pids:
        wait_for(f"container process {pid} to end", lambda pid=pid: gone(pid), timeout=10)
    # The stack is gone from the daemon too, not left `removing`.
    with Client(cli.roots, autostart=False) as c:
        assert c.get("/v1/stacks") == []


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        raw = f.read()
    fields = raw[raw.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def log_file(cli: CLI, container_id: str) -> tuple[int, int]:
    """(inode, size) of the live log file: it changes as output is logged (a chatty
    container's log is far too big to read back through `stackd logs`)."""
    st = os.stat(cli.roots.state / "containers" / container_id / "log.json")
    return st.st_ino, st.st_size


def test_a_new_monitor_adopts_the_containers(cli: CLI) -> None:
    (cli.cwd / "compose.yaml").write_text(STACK)
    cli("up", "-d")
    wait_for("quiet to start", lambda: "started" in cli("logs", "quiet").stdout)
    before = ps(cli)
    quiet, chatty = before["quiet"], before["chatty"]
    # No daemon, so no new monitor until we ask: the gap lasts as long as we like.
    stop_daemon(cli.roots)
    old = kill_monitor(cli)

    # Written while no monitor reads: it waits in the pipe, which the keeper holds.
    os.kill(quiet["pid"], signal.SIGUSR1)
    # chatty fills its pipe, then waits in write(): no SIGPIPE, no spinning.
    time.sleep(1)
    ticks = cpu_ticks(chatty["pid"])
    time.sleep(1)
    assert cpu_ticks(chatty["pid"]) - ticks <= 2, "chatty spins on a pipe nobody reads"

    # The daemon's watch on each container starts a new monitor, which adopts them.
    rows = ps(cli)
    wait_for("a new monitor", lambda: monitor_pid(cli) not in (None, old))
    assert rows["quiet"]["pid"] == quiet["pid"] and rows["chatty"]["pid"] == chatty["pid"]
    # Nothing written meanwhile is lost, and the output is read on.
    wait_for("the line written in the gap", lambda: "got-usr1" in cli("logs", "quiet").stdout)
    seen = log_file(cli, chatty["id"])
    wait_for("chatty's log to grow", lambda: log_file(cli, chatty["id"]) != seen)
    assert ps(cli)["chatty"]["state"] == "running"

    # Its exit is seen, with its real code (the old monitor's keeper reaped it), and
    # the restart policy applies.
    os.kill(quiet["pid"], signal.SIGTERM)
    def restarted() -> bool:
        row = ps(cli).get("quiet")  # none for a moment: a restart deletes, then creates
        return row is not None and row["state"] == "running" and row["pid"] != quiet["pid"]
    wait_for("quiet to be restarted", restarted)
    assert gone(quiet["pid"])
    events = [json.loads(x) for x in cli("events", "--no-follow", "--json", "--since", "0")
              .stdout.splitlines()]
    dies = [e["message"] for e in events if e["type"] == "die" and "quiet" in
            (e.get("container") or "")]
    assert dies == ["exit code 7"], dies

    cli("stop", "chatty", check=False)
    cli("down")
    assert ps(cli) == {}


def test_with_its_keeper_killed_too_an_exit_status_is_lost(cli: CLI) -> None:
    (cli.cwd / "compose.yaml").write_text(STACK.replace("restart: always", "restart: 'no'"))
    cli("up", "-d")
    wait_for("quiet to start", lambda: "started" in cli("logs", "quiet").stdout)
    quiet = ps(cli)["quiet"]
    monitor = monitor_pid(cli)
    assert monitor is not None
    keeper = parent_of(monitor)
    with open(f"/proc/{keeper}/cmdline", "rb") as f:
        assert b"stackd.runtime.keeper" in f.read()
    os.kill(keeper, signal.SIGKILL)
    kill_monitor(cli)

    wait_for("a new monitor", lambda: monitor_pid(cli) not in (None, monitor))
    os.kill(quiet["pid"], signal.SIGTERM)
    # Reaped by init: nobody could learn its status; said as Docker says it (once the
    # monitor has given up waiting for a keeper's record).
    wait_for("quiet's exit recorded", lambda: ps(cli)["quiet"]["exit_code"] is not None)
    assert ps(cli)["quiet"]["exit_code"] == 255
    exit_record = json.loads((cli.roots.run / "containers" / quiet["id"] / "exit.json")
                             .read_text())
    assert exit_record["unknown"] is True
    cli("down")
    assert ps(cli) == {}
