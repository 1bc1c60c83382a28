"""A published port of a replicated service, balanced in the kernel over its ready
replicas: what a client on the host sees through the real CLI and daemon."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import CLI, DEMO_IMAGE, torn_down
from support.freeaddrs import free_port
from support.rolling import served, wait_serving

from stackd.roots import Roots

# Each replica serves a token of its own, so a response tells which replica answered.
STACK = f"""\
name: lb
services:
  web:
    image: {DEMO_IMAGE}
    command: ["sh", "-c", "mkdir -p /www && head -c 6 /dev/urandom | od -An -tx1 |
      tr -d ' \\\\n' > /www/index.html && exec httpd -f -p 80 -h /www"]
    stop_signal: SIGKILL
    ports: ["127.0.0.1:${{LB_PORT}}:80"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]
      interval: 1s
      timeout: 2s
      retries: 1
    deploy:
      replicas: 3
"""


@pytest.fixture
def lb(no_leaks: Roots, demo_image: str, tmp_path: Path) -> Iterator[CLI]:
    work = tmp_path / "lb"
    work.mkdir()
    (work / "compose.yaml").write_text(STACK)
    with torn_down(CLI(no_leaks, work, {"LB_PORT": str(free_port())})) as cli:
        yield cli


def test_replicas_share_the_port_and_each_serves(lb: CLI) -> None:
    lb("up", "-d", "--wait", timeout=120)
    port = int(lb.environ["LB_PORT"])
    wait_serving(port, 3)
    seen, failed = served(port, 2.0)
    assert failed == [], failed
    assert len(seen) == 3, seen  # every replica answered
    total = sum(seen.values())
    assert total >= 60, seen
    # Round robin over three: no replica far from a third of the connections.
    assert min(seen.values()) >= total // 6, seen


def test_an_unhealthy_replica_gets_no_new_connections(lb: CLI) -> None:
    lb("up", "-d", "--wait", timeout=120)
    port = int(lb.environ["LB_PORT"])
    wait_serving(port, 3)
    lb("exec", "--index", "2", "web", "rm", "/www/index.html")
    deadline = time.monotonic() + 20
    while True:  # until its healthcheck has failed and it left the backends
        seen, failed = served(port, 1.0)
        if failed == [] and len(seen) == 2:
            break
        assert time.monotonic() < deadline, f"still served by 3: {seen}, {failed} failed"
    seen, failed = served(port, 2.0)
    assert failed == [] and len(seen) == 2, (seen, failed)


def test_the_hosts_connections_skip_nat_while_the_daemon_runs_and_dnat_serves_without(
        lb: CLI) -> None:
    lb("up", "-d", "--wait", timeout=120)
    port = int(lb.environ["LB_PORT"])
    wait_serving(port, 3)
    [net] = json.loads(lb("network", "inspect", "lb_default").stdout)

    def ends() -> tuple[str, tuple[str, int]]:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            return s.getsockname()[0], s.getpeername()

    # The daemon's socket load balancer: connected straight to a replica (this end is
    # the bridge's address), while the socket says where it was asked to connect.
    assert ends() == (net["gateway"], ("127.0.0.1", port))
    daemon = lb.daemon_pid()
    assert daemon is not None
    os.kill(daemon, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while lb.daemon_pid() is not None:
        assert time.monotonic() < deadline, "the daemon did not go"
        time.sleep(0.05)
    # Its programs went with it: DNAT alone serves, every replica still balanced.
    assert ends() == ("127.0.0.1", ("127.0.0.1", port))
    seen, failed = served(port, 1.0)
    assert failed == [] and len(seen) == 3, (seen, failed)
