"""Containers keep their names while the daemon is down: DNS is served by the root's
resolver process, not by the daemon. Asked from inside a container's network
namespace (nsenter), as the container itself would ask."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from e2e_helpers import CLI, torn_down

from stackd.leaks import find_leaks
from stackd.netbridge import resolver_pid
from stackd.netbridge.netns import netns_path
from stackd.roots import Roots

pytestmark = pytest.mark.root

STACK = """\
name: dnsdown
services:
  a:
    image: stackd-demo/busybox:latest
    pull_policy: never
    command: ["sleep", "3600"]
    stop_signal: SIGKILL
  b:
    image: stackd-demo/busybox:latest
    pull_policy: never
    command: ["sleep", "3600"]
    stop_signal: SIGKILL
"""

# Run in the container's namespace: its source address is the container's, so the
# resolver answers as it would answer the container.
QUERY = """\
import socket, sys
from dnslib import DNSRecord, QTYPE
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.sendto(DNSRecord.question(sys.argv[2]).pack(), (sys.argv[1], 53))
reply = DNSRecord.parse(s.recv(4096))
print(" ".join(sorted(str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A)))
"""


@pytest.fixture
def stack(no_leaks: Roots, demo_image: str, tmp_path: Path):
    work = tmp_path / "dnsdown"
    work.mkdir()
    (work / "compose.yaml").write_text(STACK)
    with torn_down(CLI(no_leaks, work)) as cli:
        yield cli


def network(cli: CLI) -> dict:
    [net] = json.loads(cli("network", "inspect", "dnsdown_default").stdout)
    return net


def container_of(net: dict, service: str) -> dict:
    return next(c for c in net["containers"] if f"dnsdown-{service}-1" in c["aliases"])


def lookup(cli: CLI, container_id: str, gateway: str, name: str) -> list[str]:
    r = subprocess.run(["nsenter", f"--net={netns_path(cli.roots.run, container_id)}",
                        sys.executable, "-c", QUERY, gateway, name],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def resolvers(roots: Roots) -> list[str]:
    return [leak.what for leak in find_leaks(roots.id, [roots]) if leak.kind == "resolver"]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_names_resolve_while_the_daemon_is_down_and_follow_scale_after(
        stack: CLI, sig: signal.Signals) -> None:
    cli = stack
    cli("up", "-d")
    net = network(cli)
    a, b = container_of(net, "a"), container_of(net, "b")
    gateway = net["gateway"]
    assert lookup(cli, a["id"], gateway, "b") == [b["ip"]]
    dns = resolver_pid(cli.roots)
    assert dns is not None

    daemon = cli.daemon_pid()
    assert daemon is not None
    os.kill(daemon, sig)
    deadline = time.monotonic() + 15
    while cli.daemon_pid() is not None:
        assert time.monotonic() < deadline, "the daemon did not go"
        time.sleep(0.05)

    # No daemon: the names still resolve, from the same resolver process.
    assert lookup(cli, a["id"], gateway, "b") == [b["ip"]]
    assert lookup(cli, b["id"], gateway, "dnsdown-a-1") == [a["ip"]]
    assert resolver_pid(cli.roots) == dns

    # A new daemon (started on demand) feeds the same resolver: a scale shows in DNS.
    cli("scale", "b=2")
    assert cli.daemon_pid() not in (None, daemon)
    ips = {c["ip"] for c in network(cli)["containers"] if "b" in c["aliases"]}
    assert len(ips) == 2
    deadline = time.monotonic() + 5
    while set(lookup(cli, a["id"], gateway, "b")) != ips:
        assert time.monotonic() < deadline, "the scale did not show in DNS"
        time.sleep(0.1)
    assert resolver_pid(cli.roots) == dns
    assert len(resolvers(cli.roots)) == 1

    # The stack's down removes its network, and the resolver with it.
    cli("down")
    assert resolver_pid(cli.roots) is None
    assert resolvers(cli.roots) == []


FIRST_LOOKUPS = """\
name: dnsfirst
services:
{services}
  client:
    image: stackd-demo/busybox:latest
    pull_policy: never
    depends_on: [{listed}]
    command: ["sh", "-c", "for n in {names} client; do nslookup $$n >/dev/null || exit 7; done;
              sleep 3600"]
    stop_signal: SIGKILL
"""
SERVICE = """\
  {name}:
    image: stackd-demo/busybox:latest
    pull_policy: never
    command: ["sh", "-c", "nslookup {name} >/dev/null || exit 7; sleep 3600"]
    stop_signal: SIGKILL
"""


def test_a_containers_first_lookups_are_answered_on_a_stacks_first_up(
        no_leaks: Roots, demo_image: str, tmp_path: Path) -> None:
    """The resolver is started (or told) while the containers are made, no longer
    before: each start still waits for it, so a container's first instruction finds
    its own name and those of what it depends on — here with no resolver running at
    first, since the root has no network yet."""
    names = [f"s{i}" for i in range(6)]
    work = tmp_path / "dnsfirst"
    work.mkdir()
    (work / "compose.yaml").write_text(FIRST_LOOKUPS.format(
        services="".join(SERVICE.format(name=n) for n in names), listed=", ".join(names),
        names=" ".join(names)))
    with torn_down(CLI(no_leaks, work)) as cli:
        assert resolver_pid(cli.roots) is None
        cli("up", "-d")
        time.sleep(1.0)  # a failed lookup exits at once; give them all time to run
        listed = cli("ps", "-a", "--format", "json").stdout
        rows = [json.loads(line) for line in listed.splitlines()]
        assert sorted((r["service"], r["state"]) for r in rows) == sorted(
            (n, "running") for n in [*names, "client"]), rows
