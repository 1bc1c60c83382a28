"""etcd members lost under a serving cluster, on real daemons: 3 nodes, each in its own
network namespace, a 3-member etcd, the shop stack up (one `web` replica per node,
tests/support/clustershop.py). Members are killed one at a time; after each kill a user
still sees every node's DNS answer the service name with the ready replicas, the
published port answer on every node, the same containers running where they ran, and
every node `up`; and a change made while a member is down (a replica made unhealthy,
a `scale`) converges. Then two members down, no quorum: the containers keep running,
DNS keeps answering from what it last knew, `scale` fails with the store's typed
error, and once quorum returns the change goes through and converges."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.busybox import busybox_available
from support.clustershop import Shop, fetch, resolve, shop_up, until_or_dump
from support.psrows import ps_rows

TIMEOUT = 20


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    if not busybox_available():
        pytest.skip("busybox-static is not installed")
    with shop_up(tmp_path, etcd_members=3) as s:
        yield s


def running(shop: Shop) -> dict[str, tuple[str, str, float]]:
    """container name → (node, id, started_at) of each running container, from every
    node's `stackd ps` (needs no etcd)."""
    out: dict[str, tuple[str, str, float]] = {}
    for n in shop.nodes:
        for c in ps_rows(n.stackd("ps", "--all-projects", "--format", "json").stdout):
            if c["state"] == "running":
                out[c["name"]] = (n.name, c["id"], float(c["started_at"]))
    return out


def nodes_up(shop: Shop) -> list[str]:
    rows = json.loads(shop.nodes[0].stackd("node", "ls", "--format", "json").stdout)
    return sorted(r["name"] for r in rows if r["status"] == "up")


def serving(shop: Shop, want: list[str], containers: set[str]) -> bool:
    """Every node's DNS gives exactly `want` for the service, and its published port is
    answered by one of `containers`."""
    return all(resolve(n, "web") == want
               and fetch(shop.world, n.node.address, shop.port) in containers
               for n in shop.nodes)


def assert_serving_unchanged(shop: Shop, before: dict[str, tuple[str, str, float]],
                             what: str) -> None:
    want = shop.ready_ips()
    assert len(want) == len(before), (what, want)
    until_or_dump(shop.nodes, f"every node serving {what}",
                  lambda: serving(shop, want, set(before)), TIMEOUT)
    # No slot moved, no container restarted (same id, same start).
    assert running(shop) == before, what
    assert nodes_up(shop) == [n.name for n in shop.nodes], what


def test_the_cluster_keeps_serving_while_etcd_members_die(shop: Shop,
                                                           tmp_path: Path) -> None:
    assert shop.world.etcd is not None
    etcd = shop.world.etcd
    members = etcd.members
    assert len(members) == 3
    compose = str(tmp_path / "compose.yaml")
    first = shop.nodes[0]
    before = running(shop)
    assert sorted(node for node, _, _ in before.values()) == [n.name for n in shop.nodes]

    # The member every node tries first gone: they move to the next one.
    members[0].kill()
    assert_serving_unchanged(shop, before, "with m0 down")
    # A change during the outage converges: a replica made unhealthy leaves every
    # node's answers, and comes back.
    victim = sorted(before)[0]
    shop.set_healthy(victim, False)
    until_or_dump(shop.nodes, "the unhealthy replica gone from every node's DNS",
                  lambda: len(shop.ready_ips()) == 2
                  and all(resolve(n, "web") == shop.ready_ips() for n in shop.nodes),
                  TIMEOUT)
    shop.set_healthy(victim, True)
    until_or_dump(shop.nodes, "it back in every node's DNS",
                  lambda: len(shop.ready_ips()) == 3
                  and all(resolve(n, "web") == shop.ready_ips() for n in shop.nodes),
                  TIMEOUT)
    members[0].start()
    members[0].wait_healthy()

    # raft's leader gone (the first member back): `scale` on a member goes through
    # and every node answers with the new replica.
    gone = etcd.leader()
    gone.kill()
    assert_serving_unchanged(shop, before, f"with the leader {gone.name} down")
    shop.set_healthy("shop-web-4", True)  # its health check's file, before it starts
    first.stackd("-f", compose, "scale", "web=4")
    until_or_dump(shop.nodes, "4 replicas ready, in every node's DNS",
                  lambda: len(shop.ready_ips()) == 4
                  and all(resolve(n, "web") == shop.ready_ips() for n in shop.nodes),
                  TIMEOUT + 10)
    scaled = running(shop)
    assert set(scaled) == set(before) | {"shop-web-4"}
    assert {k: scaled[k] for k in before} == before  # the first three untouched
    known = shop.ready_ips()

    # Two of three gone: no quorum.
    next(m for m in members if m is not gone).kill()
    # `scale` and `up` on a member: the store's typed error, in words, within the
    # client's timeout; no traceback.
    for verb in (["scale", "web=3"], ["up", "-d"]):
        t0 = time.monotonic()
        refused = first.stackd("-f", compose, *verb, check=False)
        took = time.monotonic() - t0
        assert refused.returncode == 1, (verb, refused.returncode)
        assert re.fullmatch(r"stackd: etcd at http://\S+ (did not answer|cannot serve) "
                            r"kv/\w+: \S.*\n  hint: check that the etcd cluster has a "
                            r"quorum\n", refused.stderr), (verb, refused.stderr)
        assert took < 15, (verb, took)
    # The containers keep running where they ran, every node's DNS still gives the
    # four it last knew, and the published port answers on every node.
    for n in shop.nodes:
        assert resolve(n, "web") == known, n.name
        assert fetch(shop.world, n.node.address, shop.port) in scaled, n.name
    assert running(shop) == scaled

    # Quorum back: the same change goes through and converges.
    gone.start()
    gone.wait_healthy()
    first.stackd("-f", compose, "scale", "web=3")
    until_or_dump(shop.nodes, "3 replicas again, in every node's DNS",
                  lambda: len(shop.ready_ips()) == 3
                  and all(resolve(n, "web") == shop.ready_ips() for n in shop.nodes),
                  TIMEOUT + 10)
    until_or_dump(shop.nodes, "shop-web-4 removed",
                  lambda: set(running(shop)) == set(before), TIMEOUT)
    assert running(shop) == before
    until_or_dump(shop.nodes, "every node up",
                  lambda: nodes_up(shop) == [n.name for n in shop.nodes], TIMEOUT)
