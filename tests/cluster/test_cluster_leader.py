"""Nodes, the leader and placement against a real etcd: nodes as in-process members
(each its own client and lease), killed the way SIGKILL looks to etcd: their tasks end
and their lease is left to expire."""

from __future__ import annotations

import time
from collections import Counter
from contextlib import aclosing
from types import MappingProxyType

import pytest
import trio
from support.etcdcluster import EtcdCluster
from support.tcpcut import Cuttable

from stackd.cluster import agent, keys, leader, nodes
from stackd.cluster.member import serve
from stackd.cluster.records import Assignment, NodeRecord, ServiceRecord, StackRecord
from stackd.cluster.store import Put, Store, StoreUnavailableError
from stackd.errors import AlreadyExistsError, ConflictError
from stackd.scheduler import Resources

GiB = 1 << 30
TTL = 2
# docs/cluster.md: a down node's slots are elsewhere within this long after its TTL.
BOUND = 10.0


def record(name: str, **labels: str) -> NodeRecord:
    return NodeRecord(name, cpus=4, memory=8 * GiB, pids=4096,
                      labels=MappingProxyType(labels))


def web(project: str = "shop", replicas: int = 6, cpus: float = 0.5) -> StackRecord:
    return StackRecord(project, (ServiceRecord("web", replicas, Resources(cpus=cpus)),))


class Node:
    """One member in this process: its own etcd client, killable without a goodbye."""

    def __init__(self, endpoints: list[str], name: str) -> None:
        self.store = Store(endpoints, prefix="/c/")
        self.name = name
        self.scope = trio.CancelScope()
        self.lease = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        with self.scope:
            async with trio.open_nursery() as n:
                self.lease = await n.start(serve, self.store, record(self.name), TTL)
                task_status.started()

    def kill(self) -> None:
        self.scope.cancel()


async def assignments(store: Store, project: str) -> dict[str, tuple[str, int, int]]:
    """slot → (node, term, mod_revision)."""
    kvs, _ = await store.range(keys.assignments(project))
    out = {}
    for kv in kvs:
        a = Assignment.from_json(kv.key, kv.value)
        out[keys.tail(kv.key, keys.assignments(project))] = (a.node, a.term, kv.mod_revision)
    return out


async def wait_for(store: Store, project: str, pred, timeout: float = 15.0):  # type: ignore[no-untyped-def]
    with trio.fail_after(timeout):
        while True:
            try:
                now = await assignments(store, project)
            except StoreUnavailableError:  # an etcd member killed: a new raft leader
                await trio.sleep(0.1)
                continue
            if pred(now):
                return now
            await trio.sleep(0.05)


async def test_six_replicas_spread_over_three_nodes_and_move_off_a_killed_one(
        etcd1: EtcdCluster) -> None:
    async with Store(etcd1.endpoints, prefix="/c/") as admin, trio.open_nursery() as n:
        members = [Node(etcd1.endpoints, f"n{i}") for i in range(3)]
        for m in members:
            await n.start(m.run)
        await admin.put(keys.stack("shop"), web().to_json())
        placed = await wait_for(admin, "shop", lambda a: len(a) == 6)
        assert Counter(node for node, _, _ in placed.values()) == {"n0": 2, "n1": 2, "n2": 2}
        assert {m.record.name: m.status for m in await nodes.members(admin)} == \
            {"n0": "up", "n1": "up", "n2": "up"}

        # Kill a node that does not lead, so this measures rescheduling alone.
        boss = (await admin.get(keys.LEADER)).value.decode()  # type: ignore[union-attr]
        victim = next(m for m in members if m.name != boss)
        victim.kill()
        killed = time.monotonic()
        moved = await wait_for(admin, "shop", lambda a: all(
            node != victim.name for node, _, _ in a.values()), timeout=TTL + BOUND)
        took = time.monotonic() - killed
        assert took < TTL + BOUND, took
        assert Counter(node for node, _, _ in moved.values()) == \
            {m.name: 3 for m in members if m is not victim}
        # Slots on the survivors did not move: the same write as before.
        assert {s: v for s, v in moved.items() if placed[s][0] != victim.name} == \
            {s: v for s, v in placed.items() if v[0] != victim.name}
        assert {m.record.name: m.status for m in await nodes.members(admin)}[victim.name] \
            == "down"
        n.cancel_scope.cancel()
    for m in members:
        await m.store.aclose()


async def test_a_leader_killed_mid_placement_hands_over_and_nothing_is_placed_twice(
        etcd1: EtcdCluster) -> None:
    projects = [f"p{i:03}" for i in range(200)]
    async with Store(etcd1.endpoints, prefix="/c/") as admin, trio.open_nursery() as n:
        first, other = Node(etcd1.endpoints, "a"), Node(etcd1.endpoints, "c")
        await n.start(first.run)
        with trio.fail_after(5):
            while await admin.get(keys.LEADER) is None:
                await trio.sleep(0.05)
        await n.start(other.run)
        _, rev = await admin.range(keys.ASSIGN)
        for batch in (projects[:100], projects[100:]):
            await admin.txn([], [Put(keys.stack(p), web(p, replicas=2, cpus=0.01).to_json())
                                 for p in batch])
        # Kill the leader `a` the moment its first assignment lands: mid-way through.
        async with aclosing(admin.watch(keys.ASSIGN, rev + 1)) as events:
            async for _ in events:
                first.kill()
                break
        term_a = (await admin.get(keys.LEADER)).create_revision  # type: ignore[union-attr]
        by_a = {p: await assignments(admin, p) for p in projects}
        assert 0 < sum(1 for p in projects if by_a[p]) < len(projects), \
            "not killed mid-placement"

        second = Node(etcd1.endpoints, "b")
        await n.start(second.run)
        with trio.fail_after(TTL + BOUND):
            while True:
                now = {p: await assignments(admin, p) for p in projects}
                if all(len(a) == 2 and all(v[0] != "a" for v in a.values())
                       for a in now.values()):
                    break
                await trio.sleep(0.1)
        term_b = (await admin.get(keys.LEADER)).create_revision  # type: ignore[union-attr]
        assert term_b != term_a
        # What `a` placed on the live node `c` is untouched: the very same write.
        kept = {(p, s): v for p in projects for s, v in by_a[p].items() if v[0] == "c"}
        assert kept
        assert {(p, s): now[p][s] for p, s in kept} == kept
        # Everything else was placed once, by the new leader.
        assert all(term == term_b for p in projects for s, (_, term, _) in now[p].items()
                   if (p, s) not in kept)
        # The dead leader's term can write nothing any more.
        await admin.put(keys.stack("late"), web("late", 1).to_json())
        with pytest.raises(leader.LeadershipLostError):
            await leader.place_all(first.store, term_a)
        n.cancel_scope.cancel()
    for m in (first, second, other):
        await m.store.aclose()


async def test_drain_moves_slots_and_rm_refuses_an_up_node(etcd1: EtcdCluster) -> None:
    async with Store(etcd1.endpoints, prefix="/c/") as admin, trio.open_nursery() as n:
        members = [Node(etcd1.endpoints, f"n{i}") for i in range(2)]
        for m in members:
            await n.start(m.run)
        with pytest.raises(AlreadyExistsError, match="'n0' is already up"):
            await nodes.join(admin, record("n0"), TTL)
        await admin.put(keys.stack("shop"), web(replicas=4).to_json())
        await wait_for(admin, "shop", lambda a: len(a) == 4)
        seen: list[agent.Desired] = []

        async def follow() -> None:
            async with aclosing(agent.assigned_to(admin, "n1")) as desired:
                async for d in desired:
                    seen.append(d)
        n.start_soon(follow)
        await nodes.set_availability(admin, "n1", "drain")
        await wait_for(admin, "shop", lambda a: {v[0] for v in a.values()} == {"n0"})
        with trio.fail_after(5):
            while not seen or seen[-1] != {}:
                await trio.sleep(0.05)
        assert seen[0] == {"shop": frozenset({"web-1", "web-2", "web-3", "web-4"}) &
                           seen[0]["shop"]} and len(seen[0]["shop"]) == 2
        assert (await nodes.member(admin, "n1")).record.availability == "drain"
        with pytest.raises(ConflictError, match="'n1' is up"):
            await nodes.remove(admin, "n1")
        members[1].kill()
        with trio.fail_after(TTL + 5):
            while (await nodes.member(admin, "n1")).up:
                await trio.sleep(0.1)
        await nodes.remove(admin, "n1")
        assert [m.record.name for m in await nodes.members(admin)] == ["n0"]
        n.cancel_scope.cancel()
    for m in members:
        await m.store.aclose()


async def test_a_stack_larger_than_one_etcd_transaction_is_placed_whole(
        etcd1: EtcdCluster) -> None:
    """etcd refuses more than 128 operations in one txn: 300 slots take several."""
    async with Store(etcd1.endpoints, prefix="/c/") as admin, trio.open_nursery() as n:
        members = [Node(etcd1.endpoints, f"n{i}") for i in range(3)]
        for m in members:
            await n.start(m.run)
        big = StackRecord("big", (ServiceRecord("web", 300, Resources(cpus=0.01)),))
        await admin.put(keys.stack("big"), big.to_json())
        placed = await wait_for(admin, "big", lambda a: len(a) == 300)
        assert Counter(node for node, _, _ in placed.values()) == \
            {"n0": 100, "n1": 100, "n2": 100}
        n.cancel_scope.cancel()
    for m in members:
        await m.store.aclose()


async def test_a_malformed_record_does_not_stop_placement(etcd1: EtcdCluster) -> None:
    async with Store(etcd1.endpoints, prefix="/c/") as admin, trio.open_nursery() as n:
        await admin.put(keys.stack("bad"), b'{"project": "bad", "services": "all"}')
        await admin.put(keys.node("junk"), b"\xff not json")
        member = Node(etcd1.endpoints, "n0")
        await n.start(member.run)
        await admin.put(keys.stack("shop"), web(replicas=2).to_json())
        placed = await wait_for(admin, "shop", lambda a: len(a) == 2)
        assert {node for node, _, _ in placed.values()} == {"n0"}
        assert await assignments(admin, "bad") == {}
        n.cancel_scope.cancel()
    await member.store.aclose()


async def test_the_cluster_keeps_placing_while_etcd_members_are_killed(
        etcd3: EtcdCluster) -> None:
    """A 3-member etcd loses one member (maybe its raft leader, maybe the one the
    leader's watch streams from): a node killed afterwards still has its slots moved."""
    async with Store(etcd3.endpoints, prefix="/c/") as admin, trio.open_nursery() as n:
        members = [Node(etcd3.endpoints, f"n{i}") for i in range(3)]
        for m in members:
            await n.start(m.run)
        await admin.put(keys.stack("shop"), web().to_json())
        await wait_for(admin, "shop", lambda a: len(a) == 6)
        etcd3.members[0].kill()
        boss = None
        with trio.fail_after(10):
            while boss is None:
                try:
                    boss = (await admin.get(keys.LEADER)).value.decode()  # type: ignore[union-attr]
                except StoreUnavailableError:
                    await trio.sleep(0.1)
        victim = next(m for m in members if m.name != boss)
        victim.kill()
        moved = await wait_for(admin, "shop", lambda a: len(a) == 6 and all(
            node != victim.name for node, _, _ in a.values()), timeout=TTL + BOUND)
        assert Counter(node for node, _, _ in moved.values()) == \
            {m.name: 3 for m in members if m is not victim}
        n.cancel_scope.cancel()
    for m in members:
        await m.store.aclose()


async def test_a_partitioned_node_loses_its_slots_and_on_return_runs_none_twice(
        etcd1: EtcdCluster) -> None:
    """n2 reaches etcd through a proxy that is cut: its lease runs out, its slots move;
    healed, it rejoins with a new lease and its desired state no longer holds them."""
    proxy = Cuttable(int(etcd1.endpoints[0].rsplit(":", 1)[1]))
    async with Store(etcd1.endpoints, prefix="/c/") as admin, trio.open_nursery() as n:
        await n.start(proxy.serve)
        first = Node(etcd1.endpoints, "n0")
        await n.start(first.run)  # n0 leads: it is never cut off
        members = [first, Node(etcd1.endpoints, "n1"), Node([proxy.url], "n2")]
        for m in members[1:]:
            await n.start(m.run)
        await admin.put(keys.stack("shop"), web().to_json())
        placed = await wait_for(admin, "shop", lambda a: len(a) == 6)
        held = {s for s, (node, _, _) in placed.items() if node == "n2"}
        assert len(held) == 2
        seen: list[agent.Desired] = []

        async def follow() -> None:  # n2's own view, through its own cut-off client
            async with aclosing(agent.assigned_to(members[2].store, "n2")) as desired:
                async for d in desired:
                    seen.append(d)
        n.start_soon(follow)
        with trio.fail_after(5):
            while not seen:
                await trio.sleep(0.05)
        assert seen[-1] == {"shop": frozenset(held)}
        lease = members[2].lease

        proxy.cut()
        moved = await wait_for(admin, "shop", lambda a: all(
            node != "n2" for node, _, _ in a.values()), timeout=TTL + BOUND)
        assert {s: v for s, v in moved.items() if s not in held} == \
            {s: v for s, v in placed.items() if s not in held}
        assert not members[2].scope.cancel_called  # cut off, n2 itself runs on

        await n.start(proxy.serve)  # healed
        with trio.fail_after(TTL + BOUND):
            while True:
                alive = await admin.get(keys.alive("n2"))
                if alive is not None and seen and seen[-1] == {}:
                    break
                await trio.sleep(0.1)
        assert alive.lease != lease  # rejoined with a new lease
        assert await assignments(admin, "shop") == moved  # and nothing moved back
        n.cancel_scope.cancel()
    for m in members:
        await m.store.aclose()


async def test_a_pass_from_a_stale_view_overwrites_nothing(etcd1: EtcdCluster) -> None:
    """A slot written by someone else after the leader's read: the leader's write of
    it is refused (it was conditioned on the key's revision as read), not applied."""
    async with Store(etcd1.endpoints, prefix="/c/") as s:
        lease = await s.grant(10)
        await nodes.join(s, record("n0"), 10)
        await s.put(keys.stack("shop"), web(replicas=2).to_json())
        term = await leader.campaign(s, "n0", lease)
        stale = await leader.snapshot(s)
        theirs = Assignment("elsewhere", 0).to_json()
        await s.put(keys.assignment("shop", "web-1"), theirs)
        stats = await leader.place_all(s, term, stale)
        assert stats.conflicts == 1 and stats.writes == 0
        assert (await s.get(keys.assignment("shop", "web-1"))).value == theirs  # type: ignore[union-attr]
        # From a fresh view it places what is missing and leaves the rest as found
        # ("elsewhere" is no node: that slot is moved onto n0, by a conditioned write).
        stats = await leader.place_all(s, term)
        assert stats.conflicts == 0
        assert {k: v[0] for k, v in (await assignments(s, "shop")).items()} == \
            {"web-1": "n0", "web-2": "n0"}


async def test_a_pinned_service_stays_with_its_volume_and_the_leader_says_why(
        etcd1: EtcdCluster) -> None:
    """The leader records the volume's node with the first placement; when that node
    dies its pinned slot stays there (the rest moves) and `unplaced/` says why; a stack
    no node can hold is unplaced too, and both records go when that no longer holds."""
    from stackd.cluster.records import Unplaced, VolumeRecord

    stack = StackRecord("shop", (ServiceRecord("db", 1, volumes=("data",)),
                                 ServiceRecord("web", 4, Resources(cpus=0.5))))
    async with Store(etcd1.endpoints, prefix="/c/") as admin, trio.open_nursery() as n:
        members = [Node(etcd1.endpoints, f"n{i}") for i in range(2)]
        for m in members:
            await n.start(m.run)
        await admin.put(keys.stack("shop"), stack.to_json())
        placed = await wait_for(admin, "shop", lambda a: len(a) == 5)
        kv = await admin.get(keys.volume("shop", "data"))
        assert kv is not None
        held = VolumeRecord.from_json(kv.key, kv.value).node
        assert placed["db-1"][0] == held

        async def unplaced(project: str) -> str | None:
            kv = await admin.get(keys.unplaced(project))
            return Unplaced.from_json(kv.key, kv.value).reason if kv else None

        await admin.put(keys.stack("big"), web("big", replicas=1, cpus=64).to_json())
        with trio.fail_after(10):
            while not await unplaced("big"):
                await trio.sleep(0.05)
        assert "64 CPUs" in (await unplaced("big") or "")
        await admin.delete(keys.stack("big"))

        victim = next(m for m in members if m.name == held)
        victim.kill()
        moved = await wait_for(admin, "shop", lambda a: sum(
            node == held for node, _, _ in a.values()) == 1, timeout=TTL + BOUND)
        assert moved["db-1"] == placed["db-1"]  # the same write: it did not move
        with trio.fail_after(5):
            while not await unplaced("shop"):
                await trio.sleep(0.05)
        assert f"pinned to node '{held}' by volume 'data'" in (await unplaced("shop") or "")
        assert await unplaced("big") is None
        n.cancel_scope.cancel()
    for m in members:
        await m.store.aclose()
