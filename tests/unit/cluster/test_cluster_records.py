"""The cluster's records and the pure placement change, without etcd."""

from __future__ import annotations

from collections import Counter
from types import MappingProxyType

import pytest

from stackd.cluster import assign, keys
from stackd.cluster.records import (
    Assignment,
    NodeRecord,
    ServiceRecord,
    StackRecord,
    StoreRecordError,
)
from stackd.errors import UsageError
from stackd.scheduler import Node, Resources, UnschedulableError

GiB = 1 << 30


def test_records_round_trip_through_json() -> None:
    node = NodeRecord("n1", 2.5, 4 * GiB, 1024, MappingProxyType({"zone": "a"}), "x86_64",
                      "drain", "10.0.0.2")
    assert NodeRecord.from_json("nodes/n1", node.to_json()) == node
    db = ServiceRecord("db", 1, Resources(memory=GiB), ("node.labels.zone==a",), 1)
    web = ServiceRecord("web", 3, Resources(cpus=0.5),
                        preferences=(("spread", "node.labels.rack"),))
    stack = StackRecord("shop", (db, web), "binpack")
    assert StackRecord.from_json("stacks/shop", stack.to_json()) == stack
    assert [str(s) for s in stack.slots()] == ["db-1", "web-1", "web-2", "web-3"]
    assert stack.slots()[-1].spread == ("rack",)
    with pytest.raises(StoreRecordError, match="preferences must be"):
        StackRecord.from_json("stacks/shop", b'{"project": "shop", "services": [{"name": '
                                             b'"w", "replicas": 1, "preferences": ["x"]}]}')
    assert Assignment.from_json("k", Assignment("n1", 7).to_json()) == Assignment("n1", 7)


def test_a_stack_record_carries_the_resolved_stack_for_the_agents() -> None:
    web = (ServiceRecord("web", 2),)
    carried = StackRecord("shop", web, stack='{"name":"shop"}')
    assert StackRecord.from_json("stacks/shop", carried.to_json()) == carried
    # A placement-only record (as bench writes) reads back with no stack, unchanged.
    assert b"stack" not in StackRecord("shop", web).to_json()
    with pytest.raises(StoreRecordError, match="'stack' is list"):
        StackRecord.from_json("stacks/shop", b'{"project": "shop", "services": [], '
                                             b'"stack": []}')


@pytest.mark.parametrize(("value", "why"), [
    (b"{", "not JSON"),
    (b"[]", "not a JSON object"),
    (b'{"name": "n", "cpus": 1, "memory": "lots", "pids": 1}', "'memory' is str"),
    (b'{"name": "n", "cpus": 1, "memory": 1, "pids": true}', "'pids' is bool"),
    (b'{"name": "n", "cpus": 1, "memory": 1, "pids": 1, "labels": {"a": 1}}', "labels"),
    (b'{"name": "n", "cpus": 1, "memory": 1, "pids": 1, "availability": "gone"}',
     "availability 'gone'"),
])
def test_a_hostile_node_record_is_a_typed_error_naming_the_key(value: bytes, why: str) -> None:
    with pytest.raises(StoreRecordError, match="'nodes/n'") as err:
        NodeRecord.from_json("nodes/n", value)
    assert why in str(err.value)


def test_names_cannot_escape_their_key_segment() -> None:
    assert keys.assignment("shop", "web-1") == "assign/shop/web-1"
    for bad in ("a/b", "", "..", "-x", "x" * 64):
        with pytest.raises(UsageError):
            keys.node(bad)


def _nodes(*names: str) -> list[Node]:
    return [Node(n, 4, 8 * GiB, 4096) for n in names]


SIX = StackRecord("shop", (ServiceRecord("web", 6, Resources(cpus=1)),))


def test_plan_places_everything_once_and_then_nothing() -> None:
    first = assign.plan(SIX, _nodes("a", "b", "c"), {})
    assert sorted(first.put.values()) == ["a", "a", "b", "b", "c", "c"]
    assert not first.delete
    assert not assign.plan(SIX, _nodes("a", "b", "c"), first.put)


def test_plan_moves_only_the_slots_of_a_lost_node() -> None:
    current = assign.plan(SIX, _nodes("a", "b", "c"), {}).put
    change = assign.plan(SIX, _nodes("a", "b"), current)
    assert set(change.put) == {s for s, n in current.items() if n == "c"}
    assert sorted(change.put.values()) == ["a", "b"]


def test_plan_deletes_slots_scaled_away() -> None:
    current = assign.plan(SIX, _nodes("a", "b"), {}).put
    two = StackRecord("shop", (ServiceRecord("web", 2, Resources(cpus=1)),))
    change = assign.plan(two, _nodes("a", "b"), current)
    assert change.delete == ("web-3", "web-4", "web-5", "web-6")
    assert not change.put


def test_plan_with_no_usable_node_is_unschedulable() -> None:
    with pytest.raises(UnschedulableError, match="web"):
        assign.plan(SIX, [], {})


def test_plan_all_spreads_the_cluster_not_each_stack_alone() -> None:
    """Ten stacks of two replicas over ten nodes: two slots per node, not all twenty
    on the first two nodes by name."""
    stacks = [StackRecord(f"s{i}", (ServiceRecord("web", 2, Resources(cpus=0.1)),))
              for i in range(10)]
    changes, refused = assign.plan_all(stacks, _nodes(*(f"n{i}" for i in range(10))), {})
    assert not refused
    per_node = Counter(n for c in changes.values() for n in c.put.values())
    assert sorted(per_node.values()) == [2] * 10


def test_plan_all_moves_only_a_lost_nodes_slots_and_reports_what_cannot_fit() -> None:
    stacks = [StackRecord(f"s{i}", (ServiceRecord("web", 3, Resources(cpus=1)),))
              for i in range(4)]
    nodes = _nodes("a", "b", "c", "d")
    first, _ = assign.plan_all(stacks, nodes, {})
    current = {p: c.put for p, c in first.items()}
    lost = {(p, s) for p, c in current.items() for s, n in c.items() if n == "d"}
    moved, refused = assign.plan_all(stacks, nodes[:3], current)
    assert not refused
    assert {(p, s) for p, c in moved.items() for s in c.put} == lost
    big = StackRecord("big", (ServiceRecord("web", 1, Resources(cpus=64)),))
    _, refused = assign.plan_all([*stacks, big], nodes, current)
    assert list(refused) == ["big"] and "web" in refused["big"]
