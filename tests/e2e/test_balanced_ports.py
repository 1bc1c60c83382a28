"""A published port of a replicated service, balanced in the kernel over its ready
replicas: what a client on the host sees through the real CLI and daemon."""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import CLI, DEMO_IMAGE, torn_down
from support.freeaddrs import free_port

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


def get(port: int) -> str:
    """One HTTP request on a fresh connection (so each is balanced anew); its body."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.sendall(b"GET / HTTP/1.0\r\nHost: lb\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    head, _, body = data.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.") and " 200 " in head.splitlines()[0], head
    return body.strip()


def served(port: int, seconds: float) -> tuple[Counter[str], int]:
    """Bodies seen and failed requests over a bounded loop of requests."""
    seen: Counter[str] = Counter()
    failed = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            seen[get(port)] += 1
        except (OSError, AssertionError):
            failed += 1
    return seen, failed


def test_replicas_share_the_port_and_each_serves(lb: CLI) -> None:
    lb("up", "-d", "--wait", timeout=120)
    port = int(lb.environ["LB_PORT"])
    seen, failed = served(port, 2.0)
    assert failed == 0
    assert len(seen) == 3, seen  # every replica answered
    total = sum(seen.values())
    assert total >= 60, seen
    # Round robin over three: no replica far from a third of the connections.
    assert min(seen.values()) >= total // 6, seen


def test_an_unhealthy_replica_gets_no_new_connections(lb: CLI) -> None:
    lb("up", "-d", "--wait", timeout=120)
    port = int(lb.environ["LB_PORT"])
    lb("exec", "--index", "2", "web", "rm", "/www/index.html")
    deadline = time.monotonic() + 20
    while True:  # until its healthcheck has failed and it left the backends
        seen, failed = served(port, 1.0)
        if failed == 0 and len(seen) == 2:
            break
        assert time.monotonic() < deadline, f"still served by 3: {seen}, {failed} failed"
    seen, failed = served(port, 2.0)
    assert failed == 0 and len(seen) == 2, (seen, failed)
