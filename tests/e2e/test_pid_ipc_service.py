"""`pid: service:x` and `ipc: service:x` (debug sidecars, shared memory): the
container runs in x's PID and IPC namespaces — it sees x's processes, x's shared
memory — and joins x's new ones whenever x's container is made again, restarted, or
killed and healed."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import CLI, DEMO_IMAGE, stack_dir
from support.psrows import ps_rows

from stackd.roots import Roots

pytestmark = [pytest.mark.root, pytest.mark.slow]

STACK = f"""\
name: nsshare
services:
  app:
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [sh, -c, "echo shared > /dev/shm/mark; exec sleep 1001"]
    stop_signal: SIGKILL
    restart: always
  debug:
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [sleep, "1002"]
    stop_signal: SIGKILL
    restart: always
    init: true
    pid: "service:app"
    ipc: "service:app"
"""


@pytest.fixture
def stack(no_leaks: Roots, demo_image: str, tmp_path: Path) -> Iterator[CLI]:
    with stack_dir(no_leaks, tmp_path, "nsshare", STACK) as cli:
        yield cli


def namespaces(cli: CLI, service: str) -> list[str]:
    return cli("exec", "-T", service, "sh", "-c",
               "readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc").stdout.split()


def shares(cli: CLI) -> bool:
    """debug is in app's namespaces: the same ones, app's process in its `ps`, app's
    /dev/shm (which is the IPC namespace's, as Docker mounts it)."""
    seen = cli("exec", "-T", "debug", "ps", "-o", "args").stdout
    shm = cli("exec", "-T", "debug", "cat", "/dev/shm/mark", check=False).stdout
    return (namespaces(cli, "debug") == namespaces(cli, "app") and "sleep 1001" in seen
            and shm.strip() == "shared")


def pid_of(cli: CLI, service: str) -> int | None:
    return next((r["pid"] for r in ps_rows(cli("ps", "--format", "json").stdout)
                 if r["service"] == service and r["state"] == "running"), None)


def test_a_debug_container_shares_its_services_processes_and_follows_them(stack: CLI) -> None:
    stack("up", "-d")  # was: "pid 'service:app' is not supported yet"
    assert shares(stack)
    own = stack("exec", "-T", "app", "sh", "-c", "readlink /proc/self/ns/pid").stdout
    assert own.strip() != os.readlink("/proc/self/ns/pid")  # app's own, not the host's

    # app made again (new namespaces): debug is restarted into them.
    r = stack("up", "-d", "--force-recreate", "app")
    assert "debug-1: restart — app recreated" in r.stderr, r.stderr
    assert shares(stack)
    stack("restart", "app")
    assert shares(stack)

    # app's PID 1 killed: the kernel ends every process of its PID namespace, debug's
    # too; both are healed by their policy, debug into app's new namespaces.
    killed, debug = pid_of(stack, "app"), pid_of(stack, "debug")
    assert killed is not None and debug is not None
    os.kill(killed, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while pid_of(stack, "app") in (killed, None) or pid_of(stack, "debug") in (debug, None):
        assert time.monotonic() < deadline, stack("ps", "-a").stdout
        time.sleep(0.1)
    deadline = time.monotonic() + 10
    while not shares(stack):
        assert time.monotonic() < deadline, "debug did not follow app"
        time.sleep(0.2)

    # Stopped, debug leaves nothing running in app's namespace (its first process is
    # not that namespace's init, whose end would take the rest along).
    stack("stop", "debug")
    assert "sleep 1002" not in stack("exec", "-T", "app", "ps", "-o", "args").stdout


def test_another_containers_namespace_outside_the_stack_is_refused(stack: CLI) -> None:
    (stack.cwd / "compose.yaml").write_text(STACK.replace('"service:app"', '"container:web"', 1))
    r = stack("up", "-d", check=False)
    assert r.returncode != 0
    assert "pid 'container:web' is not supported yet" in r.stderr
    assert "pid: service:NAME" in r.stderr
    assert stack("ps", "-a", "-q").stdout.strip() == ""

    (stack.cwd / "compose.yaml").write_text(STACK.replace('"service:app"', '"service:nope"', 1))
    r = stack("up", "-d", check=False)
    assert r.returncode != 0 and "'nope'" in r.stderr and "process namespace" in r.stderr


def host_processes(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(entry))
        except (OSError, ValueError):
            continue
    return found


def test_a_pid_host_container_leaves_no_process_behind(stack: CLI) -> None:
    """Its first process's children were left running on the host by `stop`, and
    `rm` then failed: "cannot remove cgroup …: Device or resource busy"."""
    (stack.cwd / "compose.yaml").write_text(
        f"name: nsshare\nservices:\n  tool:\n    image: {DEMO_IMAGE}\n"
        "    pull_policy: never\n    pid: host\n    stop_signal: SIGKILL\n"
        "    command: [sh, -c, 'sleep 1003 & exec sleep 1004']\n")
    stack("up", "-d")
    deadline = time.monotonic() + 5
    while not host_processes("1003"):
        assert time.monotonic() < deadline, "the background sleep never ran"
        time.sleep(0.05)
    stack("stop", "tool")
    assert [p for p in host_processes("1003") if _alive(p)] == []
    stack("rm", "tool")
    assert stack("ps", "-a", "-q").stdout.strip() == ""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False
