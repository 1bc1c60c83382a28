"""`network_mode: service:x` (sidecars, VPN containers): the container lives in x's
network namespace — x's address, x's localhost, x's DNS — and follows x into its new
namespace whenever x's container is made again or restarted."""

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
name: side
services:
  api:
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [httpd, -f, -p, "127.0.0.1:8080", -h, /etc]
    stop_signal: SIGKILL
    restart: always
  sidecar:
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [sleep, "1000"]
    stop_signal: SIGKILL
    network_mode: "service:api"
  client:
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [sleep, "1000"]
    stop_signal: SIGKILL
"""


@pytest.fixture
def stack(no_leaks: Roots, demo_image: str, tmp_path: Path) -> Iterator[CLI]:
    with stack_dir(no_leaks, tmp_path, "side", STACK) as cli:
        yield cli


def address(cli: CLI, service: str) -> str:
    return cli("exec", "-T", service, "sh", "-c", "ip -4 -o addr show eth0").stdout.split()[3]


def reaches_api_on_localhost(cli: CLI) -> bool:
    r = cli("exec", "-T", "sidecar", "wget", "-qO-", "http://127.0.0.1:8080/passwd",
            check=False)
    return r.returncode == 0 and "root:" in r.stdout


def test_a_sidecar_shares_its_services_network_and_follows_it(stack: CLI) -> None:
    stack("up", "-d")  # was: "network_mode 'service:api' is not supported yet"
    assert address(stack, "sidecar") == address(stack, "api")
    assert reaches_api_on_localhost(stack)  # api listens on 127.0.0.1 only
    assert "Address" in stack("exec", "-T", "sidecar", "nslookup", "client").stdout

    # api made again (a new namespace): the sidecar is restarted into it.
    r = stack("up", "-d", "--force-recreate", "api")
    assert "sidecar-1: restart — api recreated" in r.stderr, r.stderr
    assert reaches_api_on_localhost(stack)
    stack("restart", "api")
    assert reaches_api_on_localhost(stack)

    # Killed and restarted by its policy: api keeps its namespace, the sidecar with it.
    def api_pid() -> int | None:
        return next((r["pid"] for r in ps_rows(stack("ps", "--format", "json").stdout)
                     if r["service"] == "api"), None)

    killed = api_pid()
    assert killed is not None
    os.kill(killed, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while api_pid() in (killed, None):
        assert time.monotonic() < deadline, "api was not restarted"
        time.sleep(0.1)
    assert reaches_api_on_localhost(stack)


def test_a_sidecar_publishing_ports_is_refused(stack: CLI) -> None:
    (stack.cwd / "compose.yaml").write_text(STACK.replace(
        '"service:api"\n', '"service:api"\n    ports: ["18099:80"]\n'))
    r = stack("up", "-d", check=False)
    assert r.returncode != 0
    assert "shares another container's network, so it publishes no ports" in r.stderr
