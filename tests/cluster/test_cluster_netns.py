"""The integration tier: a 3-member etcd and 3 stackd daemons on one machine, each
node in its own network namespace on an underlay bridge, with its own state root.
`stackd up` on one node publishes the stack; every node runs its own slots as real
containers (network_mode none: the overlay has its own test, test_cluster_overlay.py)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.clusterworld import NodeNs, World, ip, stack_world
from support.psrows import ps_rows

from stackd.cli.client import Client
from stackd.cluster import keys
from stackd.cluster.records import Assignment
from stackd.cluster.store import Store, StoreUnavailableError
from stackd.daemon.paths import pid_path
from stackd.daemon.pidfile import read_pid

TTL = 2
BOUND = 10.0
IMAGE = "stackd-demo/busybox:latest"
STACK = f"""
name: shop
services:
  web:
    image: {IMAGE}
    command: [sleep, "3600"]
    stop_signal: SIGKILL  # busybox sleep as PID 1 ignores SIGTERM: no grace to wait out
    network_mode: none
    deploy:
      replicas: 6
      resources: {{reservations: {{cpus: "0.1"}}}}
"""


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with stack_world(tmp_path, STACK, IMAGE) as w:
        yield w


def read(world: World) -> tuple[dict[str, str], str, set[str]]:
    """slot → node, the leader, the nodes up — read inside the switch namespace."""
    assert world.etcd is not None

    async def go() -> tuple[dict[str, str], str, set[str]]:
        async with Store(world.etcd.endpoints, timeout=2.0) as s:
            while True:
                try:
                    kvs, _ = await s.range(keys.assignments("shop"))
                    boss = await s.get(keys.LEADER)
                    alive, _ = await s.range(keys.ALIVE)
                    break
                except StoreUnavailableError:
                    continue  # an etcd member killed: its successor is elected
        return ({keys.tail(kv.key, keys.assignments("shop")):
                 Assignment.from_json(kv.key, kv.value).node for kv in kvs},
                boss.value.decode() if boss else "",
                {keys.tail(kv.key, keys.ALIVE) for kv in alive})
    return world.run_in_switch(go)


def wait(world: World, pred, timeout: float):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        state = read(world)
        if pred(*state):
            return state
        assert time.monotonic() < deadline, f"timed out; last: {state}"
        time.sleep(0.2)


def assigned(node: NodeNs) -> dict[str, list[str]]:
    """What the node's daemon says it is assigned (GET /v1/cluster on its socket)."""
    with Client(node.roots, autostart=False) as c:
        return c.get("/v1/cluster")["assigned"]  # type: ignore[no-any-return]


def running(node: NodeNs) -> list[str]:
    """The slots (<service>-<index>) the node's runtime runs, as its `stackd ps` says."""
    rows = ps_rows(node.stackd("ps", "--all-projects", "--format", "json").stdout)
    return sorted(r["name"].removeprefix("shop-") for r in rows
                  if r.get("project") == "shop" and r.get("state") == "running")


def until(pred, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_six_replicas_over_three_namespaced_nodes_through_partition_and_kills(
        world: World, tmp_path: Path) -> None:
    assert world.etcd is not None
    urls = world.etcd.endpoints
    for n in world.nodes:
        n.stackd("node", "join", "--etcd", *urls, "--name", n.name, "--ttl", str(TTL),
                 "--address", n.address)
    listed = json.loads(world.nodes[0].stackd("node", "ls", "--format", "json").stdout)
    assert [(r["name"], r["status"], r["address"]) for r in listed] == \
        [(n.name, "up", n.address) for n in world.nodes]

    # `up` on one member: the stack goes to etcd, the leader places it.
    world.nodes[0].stackd("-f", str(tmp_path / "compose.yaml"), "up", "-d")
    placed, boss, _ = wait(world, lambda a, b, u: len(a) == 6 and b, 15)
    assert Counter(placed.values()) == {n.name: 2 for n in world.nodes}

    def mine(where: dict[str, str], node: str) -> list[str]:
        return sorted(s for s, n in where.items() if n == node)
    # Each daemon follows its own assignments and runs exactly those as containers.
    for n in world.nodes:
        until(lambda n=n: assigned(n) == {"shop": mine(placed, n.name)}, 10)
        until(lambda n=n: running(n) == mine(placed, n.name), 20)

    # Partition a node that does not lead: its underlay link down.
    cut = next(n for n in world.nodes if n.name != boss)
    ip("-n", cut.netns, "link", "set", cut.link, "down")
    moved, _, _ = wait(world, lambda a, b, u: cut.name not in u and len(a) == 6
                       and cut.name not in a.values(), TTL + BOUND)
    assert {s: n for s, n in moved.items() if placed[s] != cut.name} == \
        {s: n for s, n in placed.items() if n != cut.name}
    # Its slots run on the others; cut off, it keeps its own (availability first).
    for n in world.nodes:
        if n is not cut:
            until(lambda n=n: running(n) == mine(moved, n.name), BOUND)
    assert running(cut) == mine(placed, cut.name)
    # Healed: it rejoins; nothing moves back, nothing is placed twice.
    ip("-n", cut.netns, "link", "set", cut.link, "up")
    wait(world, lambda a, b, u: cut.name in u, TTL + BOUND)
    assert read(world)[0] == moved
    until(lambda: assigned(cut) == {}, 10)  # what moved is no longer its to run
    until(lambda: running(cut) == [], BOUND)  # and it stops it: no duplicates

    # An etcd member dies; then the leader's daemon is killed.
    world.etcd.members[0].kill()
    leader = next(n for n in world.nodes if n.name == boss)
    pid = read_pid(pid_path(leader.roots))
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    after, new_boss, _ = wait(world, lambda a, b, u: b and b != boss and len(a) == 6
                              and boss not in a.values(), TTL + BOUND + 5)
    assert {s: n for s, n in after.items() if moved[s] != boss} == \
        {s: n for s, n in moved.items() if n != boss}
    survivors = {n.name for n in world.nodes if n.name != boss}
    assert new_boss in survivors and set(after.values()) <= survivors
    # The dead node's slots run as containers on the survivors, each exactly once.
    for n in world.nodes:
        if n.name in survivors:
            until(lambda n=n: running(n) == mine(after, n.name), BOUND)
