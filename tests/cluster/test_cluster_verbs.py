"""Cluster-wide verbs on real daemons in the namespaced world (support/clusterworld):
`scale` on one member changes the replicas every node runs (and `rollback` restores
them), a volume-pinned service
stays on its node through a drain (and says why it is unplaced when its own node is
drained), `plan` names the pin, lifecycle verbs are refused with what to do, and
`down -v` on any member removes the containers on every node, the stack's keys and
the volume on the node holding it."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.clusterworld import NodeNs, World, stack_world

from stackd.cli.client import Client
from stackd.cluster import keys
from stackd.cluster.store import Store

TTL = 2
IMAGE = "stackd-demo/busybox:latest"
STACK = f"""
name: shop
services:
  web:
    image: {IMAGE}
    command: [sleep, "3600"]
    stop_signal: SIGKILL
    network_mode: none
    deploy:
      replicas: 6
      resources: {{reservations: {{cpus: "0.1"}}}}
  db:
    image: {IMAGE}
    command: [sleep, "3600"]
    stop_signal: SIGKILL
    network_mode: none
    volumes: [data:/data]
volumes:
  data: {{}}
"""


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with stack_world(tmp_path, STACK, IMAGE, etcd_members=1, down=("-v", "-t", "0")) as w:
        yield w


def etcd(world: World, prefix: str) -> dict[str, str]:
    """key → value under `prefix`, read inside the switch namespace."""
    assert world.etcd is not None
    endpoints = world.etcd.endpoints

    async def go() -> dict[str, str]:
        async with Store(endpoints, timeout=2.0) as s:
            kvs, _ = await s.range(prefix)
        return {kv.key: kv.value.decode() for kv in kvs}
    return world.run_in_switch(go)


def placed(world: World) -> dict[str, str]:
    """slot → node of the stack `shop`."""
    return {keys.tail(k, keys.assignments("shop")): json.loads(v)["node"]
            for k, v in etcd(world, keys.assignments("shop")).items()}


def running(node: NodeNs) -> list[str]:
    """The slots the node's runtime runs (what its `stackd ps` lists; asked of its
    daemon's socket directly, as polling through a CLI process per try is slow)."""
    with Client(node.roots, autostart=False) as client:
        rows = client.get("/v1/containers", project="shop", all=True)
    return sorted(r["name"].removeprefix("shop-") for r in rows
                  if r.get("project") == "shop" and r.get("state") == "running")


def volumes(node: NodeNs) -> list[str]:
    """The projects of the node's volumes."""
    with Client(node.roots, autostart=False) as client:
        return [v["project"] for v in client.get("/v1/volumes")]


def stacks(node: NodeNs) -> list[str]:
    with Client(node.roots, autostart=False) as client:
        return [s["project"] for s in client.get("/v1/stacks")]


def until(pred, timeout: float, what: str = "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.3)


def joined_and_up(world: World, compose: str) -> list[NodeNs]:
    """Every node joined to the cluster, then `up -d` of `compose` on the first."""
    assert world.etcd is not None
    for n in world.nodes:
        n.stackd("node", "join", "--etcd", *world.etcd.endpoints, "--name", n.name,
                 "--ttl", str(TTL), "--address", n.address)
    nodes: list[NodeNs] = list(world.nodes)
    nodes[0].stackd("-f", compose, "up", "-d")
    return nodes


def mine(where: dict[str, str], node: str) -> list[str]:
    return sorted(s for s, n in where.items() if n == node)


def test_scale_pin_drain_refusal_and_down_act_on_the_whole_cluster(
        world: World, tmp_path: Path) -> None:
    compose = str(tmp_path / "compose.yaml")
    a, b, c = joined_and_up(world, compose)
    until(lambda: len(placed(world)) == 7, 15, "7 slots placed")
    # The first placement chose db's node and recorded its volume there.
    volume = etcd(world, keys.volume("shop", "data"))
    held = json.loads(volume[keys.volume("shop", "data")])["node"]
    at = placed(world)
    assert at["db-1"] == held
    for n in world.nodes:
        until(lambda n=n: running(n) == mine(placed(world), n.name), 30, f"{n.name} runs")

    # `plan` on another member names the pin.
    assert f"db pinned to node {held} by volume data" in b.stackd("-f", compose, "plan").stdout

    # `scale` on another member: 3 web replicas cluster-wide, on every node's runtime.
    c.stackd("-f", compose, "scale", "web=3")
    until(lambda: sorted(placed(world)) == ["db-1", "web-1", "web-2", "web-3"], 15,
          "scaled to 3 in etcd")
    until(lambda: sorted(s for n in world.nodes for s in running(n)) ==
          ["db-1", "web-1", "web-2", "web-3"], 30, "3 web containers cluster-wide")

    # Drain a node other than db's: its web slots move, db stays with its volume.
    other = next(n for n in world.nodes if n.name != held)
    a.stackd("node", "drain", other.name)
    until(lambda: other.name not in placed(world).values() and len(placed(world)) == 4, 15,
          "drained node emptied")
    assert placed(world)["db-1"] == held
    # Draining db's own node leaves db there, unplaced, saying why (GET /v1/cluster,
    # node ls); the web slots that can move do.
    a.stackd("node", "active", other.name)
    a.stackd("node", "drain", held)
    until(lambda: keys.unplaced("shop") in etcd(world, keys.UNPLACED), 15, "unplaced said")
    assert placed(world)["db-1"] == held
    with Client(b.roots, autostart=False) as client:
        why = client.get("/v1/cluster")["unplaced"]["shop"]
    assert f"pinned to node '{held}' by volume 'data'" in why
    assert "is not fully placed" in a.stackd("node", "ls").stderr
    # ... and an `up` (here `scale`, to the count it has: the same stack, so no other
    # node records a new revision) hears the leader's reason.
    again = b.stackd("-f", compose, "scale", "web=3")
    assert "the cluster cannot place it" in again.stderr and "pinned" in again.stderr
    a.stackd("node", "active", held)
    until(lambda: keys.unplaced("shop") not in etcd(world, keys.UNPLACED), 15,
          "unplaced cleared")

    # A lifecycle verb is refused on a member, naming the verb and what to do instead.
    stop = a.stackd("-f", compose, "stop", "web", check=False)
    assert stop.returncode != 0
    assert "`stackd stop`" in stop.stderr and "stackd scale" in stop.stderr
    assert Counter(s.rpartition("-")[0] for n in world.nodes for s in running(n)) == \
        {"web": 3, "db": 1}

    # `rollback` on the member that scaled: the stack before it (6 web) is published
    # and every node runs its share of it.
    c.stackd("-f", compose, "rollback")
    until(lambda: len(placed(world)) == 7, 15, "rolled back to 6 web in etcd")
    until(lambda: sorted(s for n in world.nodes for s in running(n)) ==
          sorted(placed(world)), 30, "6 web containers cluster-wide")

    # `down -v` on a member that is not db's: the keys go, every node removes its
    # containers and the stack, and db's node its volume too.
    pinned = next(n for n in world.nodes if n.name == held)
    assert "shop" in volumes(pinned)
    down = next(n for n in world.nodes if n.name != held)
    down.stackd("-f", compose, "down", "-v", "-t", "0")
    assert not etcd(world, keys.stack("shop")) and not placed(world)
    assert not etcd(world, keys.volumes("shop"))
    for n in world.nodes:
        until(lambda n=n: running(n) == [], 30, f"{n.name} removed its slots")
        until(lambda n=n: "shop" not in stacks(n), 15, f"{n.name} forgot shop")
    until(lambda: "shop" not in volumes(pinned), 15, "db's node removed its volume")


GLOBAL = f"""
name: shop
services:
  agent:
    image: {IMAGE}
    command: [sleep, "3600"]
    stop_signal: SIGKILL
    network_mode: none
    deploy:
      mode: global
"""


@pytest.fixture
def global_world(tmp_path: Path) -> Iterator[World]:
    with stack_world(tmp_path, GLOBAL, IMAGE, etcd_members=1) as w:
        yield w


def test_a_global_service_runs_on_every_active_node(global_world: World,
                                                     tmp_path: Path) -> None:
    """`deploy.mode: global` (a Swarm user's node agent) was read and dropped: one
    replica ran in the whole cluster."""
    world = global_world
    compose = str(tmp_path / "compose.yaml")
    a, b, c = joined_and_up(world, compose)
    until(lambda: sorted(placed(world).values()) == sorted(n.name for n in world.nodes), 15,
          "one agent slot on each node")
    for n in world.nodes:
        until(lambda n=n: len(running(n)) == 1, 30, f"{n.name} runs its agent")
    # A drained node runs none; made active again, it gets one back.
    a.stackd("node", "drain", c.name)
    until(lambda: sorted(placed(world).values()) == sorted([a.name, b.name]), 15,
          "the drained node's agent slot gone")
    until(lambda: running(c) == [], 30, "the drained node stopped its agent")
    a.stackd("node", "active", c.name)
    until(lambda: c.name in placed(world).values() and len(placed(world)) == 3, 15,
          "an agent slot on the node made active")
    until(lambda: len(running(c)) == 1, 30, "it runs its agent again")
