"""`stackd node …` with real daemons on private roots, joined to a real etcd."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from support.etcdcluster import EtcdCluster

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from e2e_helpers import CLI, stop_daemon

from stackd.cluster import keys, nodes
from stackd.cluster.store import Store
from stackd.roots import Roots


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[list[CLI]]:
    """Two stackd roots, each with its daemon (started by its first command)."""
    clis = []
    for name in ("h1", "h2"):
        roots = Roots(state=tmp_path / name / "state", run=tmp_path / name / "run").ensure()
        clis.append(CLI(roots, tmp_path))
    try:
        yield clis
    finally:
        for c in clis:
            stop_daemon(c.roots)


def ls(cli: CLI) -> dict[str, dict[str, object]]:
    return {r["name"]: r for r in json.loads(cli("node", "ls", "--format", "json").stdout)}


def status(etcd: EtcdCluster) -> dict[str, tuple[str, bool]]:
    """name → (up or down, leads), read from etcd in-process (a CLI run costs ~1 s)."""
    async def read() -> dict[str, tuple[str, bool]]:
        async with Store(etcd.endpoints) as store:
            boss = await store.get(keys.LEADER)
            return {m.record.name: (m.status, bool(boss) and boss.value.decode()
                                    == m.record.name)  # type: ignore[union-attr]
                    for m in await nodes.members(store)}
    return trio.run(read)


def wait_until(pred, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_join_ls_drain_and_a_killed_daemon_going_down(etcd1: EtcdCluster,
                                                      hosts: list[CLI]) -> None:
    h1, h2 = hosts
    url = etcd1.endpoints[0]
    # alpha's TTL leaves a loaded machine room to restart its daemon within it (below).
    out = h1("node", "join", "--etcd", url, "--name", "alpha", "--label", "zone=a",
             "--ttl", "30")
    assert out.stdout.strip() == "joined the cluster as node alpha"
    taken = h2("node", "join", "--etcd", url, "--name", "alpha", check=False)
    assert taken.returncode == 1 and "node 'alpha' is already up" in taken.stderr
    assert "Traceback" not in taken.stderr and "Exception" not in taken.stderr
    h2("node", "join", "--etcd", url, "--name", "beta", "--ttl", "2")
    nodes = ls(h1)
    assert {n: (r["status"], r["availability"]) for n, r in nodes.items()} == \
        {"alpha": ("up", "active"), "beta": ("up", "active")}
    assert nodes["alpha"]["labels"] == {"zone": "a"}
    wait_until(lambda: sum(lead for _, lead in status(etcd1).values()) == 1, 5)

    again = h1("node", "join", "--etcd", url, "--name", "gamma", check=False)
    assert again.returncode == 1 and "already node 'alpha'" in again.stderr
    assert "Traceback" not in again.stderr

    h1("node", "drain", "beta")
    beta = json.loads(h2("node", "inspect", "beta").stdout)
    assert (beta["name"], beta["status"], beta["availability"]) == ("beta", "up", "drain")
    refused = h1("node", "rm", "beta", check=False)
    assert refused.returncode == 1 and "'beta' is up" in refused.stderr

    # SIGKILL beta's daemon: no goodbye, its lease expires after the TTL.
    pid = h2.daemon_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: status(etcd1)["beta"][0] == "down", 2 + 5)
    h1("node", "rm", "beta")
    assert list(status(etcd1)) == ["alpha"]

    # A daemon restarted within its TTL carries on with its lease: the node never
    # counts as down, so its slots are not moved for a restart.
    lease = alive_lease(etcd1, "alpha")
    stop_daemon(h1.roots)
    h1("ls")  # a command that talks to the daemon starts it again
    wait_until(lambda: cluster_status(h1)["lease"] == lease, 30)
    assert alive_lease(etcd1, "alpha") == lease


def alive_lease(etcd: EtcdCluster, name: str) -> int:
    async def read() -> int:
        async with Store(etcd.endpoints) as store:
            kv = await store.get(keys.alive(name))
            return kv.lease if kv else 0
    return trio.run(read)


def cluster_status(cli: CLI) -> dict[str, object]:
    from stackd.cli.client import Client

    with Client(cli.roots, autostart=False) as c:
        return c.get("/v1/cluster")  # type: ignore[no-any-return]


def test_node_verbs_without_a_cluster_say_how_to_join(tmp_path: Path) -> None:
    roots = Roots(state=tmp_path / "state", run=tmp_path / "run").ensure()
    cli = CLI(roots, tmp_path)
    r = cli("node", "ls", check=False)
    assert r.returncode == 2 and "has not joined a cluster" in r.stderr
    r = cli("node", "join", "--etcd", "127.0.0.1:2379", check=False)
    assert r.returncode == 2 and "not an http(s) URL" in r.stderr
