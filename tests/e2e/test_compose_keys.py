"""Compose keys end to end: a host port range shared by replicas, `stop`/`restart`/
`down` -t, a platform the host can't run, `attach: false`."""

from __future__ import annotations

import os
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import CLI, reconciler_ready, torn_down

from stackd.roots import Roots

pytestmark = [pytest.mark.root, pytest.mark.slow]

IMAGE = "image: stackd-demo/busybox:latest\n    pull_policy: never\n"


@pytest.fixture
def stack(no_leaks: Roots, demo_image: str, tmp_path: Path) -> Iterator[CLI]:
    if not reconciler_ready():
        pytest.skip("the reconciler has no desired-state builder yet")
    work = tmp_path / "keys"
    work.mkdir()
    with torn_down(CLI(no_leaks, work)) as cli:
        yield cli


def free_range(length: int) -> int:
    """The first of `length` consecutive free TCP ports on loopback, found at run time."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + length > 65535:
            continue
        held: list[socket.socket] = []
        try:
            for port in range(first, first + length):
                s = socket.socket()
                held.append(s)
                s.bind(("0.0.0.0", port))
            return first
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise AssertionError("no free port range found")


def fetch(port: int, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                return r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_three_replicas_each_answer_on_their_own_port_of_the_range(stack: CLI) -> None:
    first = free_range(3)
    (stack.cwd / "compose.yaml").write_text(
        f"name: ranged\nservices:\n  web:\n    {IMAGE}"
        "    command: [sh, -c, 'mkdir -p /www && hostname > /www/index.html && "
        "exec httpd -f -p 80 -h /www']\n"
        "    stop_signal: SIGKILL\n"
        "    deploy: {replicas: 3}\n"
        f"    ports: ['{first}-{first + 2}:80']\n")
    stack("up", "-d")
    answers = [fetch(port).strip() for port in range(first, first + 3)]
    assert answers == ["ranged-web-1", "ranged-web-2", "ranged-web-3"]


def _sleeper(cli: CLI) -> None:
    # PID 1 without a SIGTERM handler ignores SIGTERM: a stop waits out the grace period
    # (30 s here) unless -t says otherwise.
    (cli.cwd / "compose.yaml").write_text(
        f"name: slow\nservices:\n  app:\n    {IMAGE}"
        "    command: [sleep, '1000']\n    stop_grace_period: 30s\n")
    cli("up", "-d")


def _timed(cli: CLI, *args: str) -> float:
    start = time.monotonic()
    cli(*args)
    return time.monotonic() - start


def test_stop_restart_and_down_take_a_timeout(stack: CLI) -> None:
    _sleeper(stack)
    assert _timed(stack, "stop", "-t", "1") < 15
    assert _timed(stack, "restart", "--timeout", "1") < 15
    assert _timed(stack, "down", "-t", "0") < 15
    assert stack("ps", "-a", "-q").stdout.strip() == ""


def test_a_platform_the_host_cannot_run_is_refused_naming_both(stack: CLI) -> None:
    other = "linux/amd64" if os.uname().machine == "s390x" else "linux/s390x"
    (stack.cwd / "compose.yaml").write_text(
        f"name: plat\nservices:\n  app:\n    {IMAGE}    platform: {other}\n"
        "    command: [sleep, '1000']\n")
    r = stack("up", "-d", check=False)
    assert r.returncode != 0
    assert f"service 'app' asks for platform {other}, which this host" in r.stderr
    assert stack("ps", "-a", "-q").stdout.strip() == ""


def test_devices_are_made_and_an_unlisted_one_is_denied_by_the_cgroup(stack: CLI) -> None:
    (stack.cwd / "compose.yaml").write_text(
        f"name: devs\nservices:\n  app:\n    {IMAGE}"
        "    command: [sleep, '1000']\n    stop_signal: SIGKILL\n"
        "    devices: ['/dev/null:/dev/mynull', '/dev/fuse', '/dev/zero:/dev/sub/z:r']\n"
        f"  other:\n    {IMAGE}"
        "    command: [sleep, '1000']\n    stop_signal: SIGKILL\n")
    stack("up", "-d")
    r = stack("exec", "-T", "app", "sh", "-c",
              "stat -c %t:%T /dev/mynull; echo hi > /dev/mynull && wc -c < /dev/mynull; "
              ": < /dev/fuse && echo fuse-ok; head -c 3 /dev/sub/z | od -An -tx1")
    assert r.stdout.split("\n")[:3] == ["1:3", "0", "fuse-ok"]
    assert r.stdout.split("\n")[3].split() == ["00", "00", "00"]
    # The same node made by hand where it is not listed: the device cgroup refuses it.
    denied = stack("exec", "-T", "other", "sh", "-c",
                   "mknod /dev/f2 c 10 229 && echo made && : < /dev/f2", check=False)
    assert denied.returncode != 0
    assert denied.stdout.strip() == "made"
    assert "Operation not permitted" in denied.stderr
    absent = stack("exec", "-T", "other", "sh", "-c", "test -e /dev/fuse || echo absent")
    assert absent.stdout.strip() == "absent"
