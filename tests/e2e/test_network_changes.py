"""A network whose subnet, `internal` or labels change in the stack file is made again
on `up`, with its containers on it; `plan` says so first. Networks whose
configuration is unchanged, and their containers, are left alone."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import CLI, DEMO_IMAGE, torn_down
from support.freeaddrs import free_subnet
from support.psrows import ps_rows

from stackd.roots import Roots

pytestmark = [pytest.mark.root, pytest.mark.slow]

STACK = f"""\
name: netchange
services:
  web:
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [sleep, "1000"]
    stop_signal: SIGKILL
    networks: [front]
  db:
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [sleep, "1000"]
    stop_signal: SIGKILL
    networks: [back]
networks:
  front:
    ipam: {{config: [{{subnet: SUBNET_A}}]}}
  back: {{}}
"""


@pytest.fixture
def subnets() -> tuple[str, str]:
    """Two free /24s, taken at run time: another test run may be on this host too."""
    a = free_subnet()
    b = free_subnet()
    while b == a:
        b = free_subnet()
    return str(a), str(b)


@pytest.fixture
def stack(no_leaks: Roots, demo_image: str, tmp_path: Path,
          subnets: tuple[str, str]) -> Iterator[CLI]:
    work = tmp_path / "netchange"
    work.mkdir()
    (work / "compose.yaml").write_text(STACK.replace("SUBNET_A", subnets[0]))
    with torn_down(CLI(no_leaks, work)) as cli:
        yield cli


def _network(cli: CLI, key: str) -> dict[str, object]:
    (net,) = json.loads(cli("network", "inspect", key).stdout)
    return net  # type: ignore[no-any-return]


def _bridge_addresses(bridge: str) -> list[str]:
    out = subprocess.run(["ip", "-j", "addr", "show", "dev", bridge], capture_output=True,
                         text=True, check=True).stdout
    return [f"{a['local']}/{a['prefixlen']}" for link in json.loads(out)
            for a in link.get("addr_info", []) if a.get("family") == "inet"]


def test_changing_a_network_recreates_it_and_reattaches_its_containers(
        stack: CLI, subnets: tuple[str, str]) -> None:
    cli = stack
    first, second = subnets
    cli("up", "-d")
    front = _network(cli, "netchange_front")
    assert front["subnet"] == first
    back_before = _network(cli, "netchange_back")
    pids_before = {s: _pid(cli, s) for s in ("web", "db")}
    revision = 1  # the `up` above

    for change, check in (
        (lambda t: t.replace(first, second),
         lambda n: n["subnet"] == second),
        (lambda t: t.replace("  front:\n", "  front:\n    internal: true\n"),
         lambda n: n["internal"] is True),
        (lambda t: t.replace("  front:\n", "  front:\n    labels: {tier: web}\n"),
         lambda n: n["labels"].get("tier") == "web"),  # type: ignore[union-attr]
    ):
        text = change((cli.cwd / "compose.yaml").read_text())
        (cli.cwd / "compose.yaml").write_text(text)
        plan = cli("plan").stdout.splitlines()
        # The actions, then (since revisions) which files changed since the applied one.
        assert plan == ["network netchange_front: recreate — its configuration changed",
                        "web-1: create — network netchange_front recreated",
                        "web-1: remove — network netchange_front recreated",
                        f"since the applied revision {revision}:",
                        f"  stack {cli.cwd / 'compose.yaml'}: changed"]
        revision += 1
        cli("up", "-d")
        front = _network(cli, "netchange_front")
        assert check(front), front
        # The host holds the new network, with web on it again, running.
        (web_on,) = front["containers"]  # type: ignore[misc]
        subnet = str(front["subnet"])
        assert web_on["ip"].rsplit(".", 1)[0] == subnet.rsplit(".", 1)[0]
        assert _bridge_addresses(str(front["bridge"])) == [f"{front['gateway']}/24"]
        web_pid = _pid(cli, "web")
        assert web_pid is not None and web_pid != pids_before["web"]
        pids_before["web"] = web_pid
        # db and its network were left alone.
        assert _network(cli, "netchange_back") == back_before
        assert _pid(cli, "db") == pids_before["db"]
        assert "nothing to do" in cli("plan").stdout


def _pid(cli: CLI, service: str) -> int | None:
    rows = ps_rows(cli("ps", "--format", "json").stdout)
    for r in rows:
        if r.get("service") == service and r.get("state") == "running":
            return int(r["pid"]) if r.get("pid") else None
    return None
