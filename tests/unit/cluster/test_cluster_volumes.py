"""Volumes pinned to their node (assign.py): the first placement chooses and records
the node, later ones keep the service there, a pinned service whose node is gone
stays unplaced with a reason naming the pin."""

from __future__ import annotations

import pytest

from stackd.cluster import assign, keys
from stackd.cluster.records import (
    ServiceRecord,
    StackRecord,
    StoreRecordError,
    Unplaced,
    VolumeRecord,
)
from stackd.scheduler import Node, Resources

GiB = 1 << 30


def _nodes(*names: str) -> list[Node]:
    return [Node(n, 4, 8 * GiB, 4096) for n in names]


STACK = StackRecord("shop", (
    ServiceRecord("db", 1, Resources(cpus=0.1), volumes=("data",)),
    ServiceRecord("backup", 1, Resources(cpus=0.1), volumes=("data",)),
    ServiceRecord("web", 6, Resources(cpus=0.1)),
))


def _where(current: dict[str, str], service: str) -> set[str]:
    return {n for s, n in current.items() if s.rpartition("-")[0] == service}


def test_first_placement_chooses_one_node_for_a_volume_and_records_it() -> None:
    changes, refused = assign.plan_all([STACK], _nodes("a", "b", "c"), {})
    assert not refused
    change = changes["shop"]
    node = change.volumes["data"]
    # Both services mounting `data` run where it is; the unpinned web is still spread.
    assert _where(change.put, "db") == _where(change.put, "backup") == {node}
    assert _where(change.put, "web") == {"a", "b", "c"}


def test_a_recorded_volume_keeps_its_services_on_that_node_when_others_change() -> None:
    current = {"shop": {"db-1": "b", "backup-1": "b", **{f"web-{i}": "abc"[i % 3]
                                                         for i in range(1, 7)}}}
    volumes = {"shop": {"data": "b"}}
    # Node a drained (not usable): web moves, the pinned services stay on b.
    changes, refused = assign.plan_all([STACK], _nodes("b", "c"), current, volumes)
    assert not refused
    assert not {"db-1", "backup-1"} & set(changes["shop"].put)
    assert not changes["shop"].volumes
    # A slot found elsewhere than its volume's node is moved there.
    current["shop"].update(changes["shop"].put, **{"db-1": "c"})
    changes, _ = assign.plan_all([STACK], _nodes("b", "c"), current, volumes)
    assert changes["shop"].put == {"db-1": "b"}


def test_a_pinned_service_whose_node_is_down_stays_unplaced_and_says_why() -> None:
    current = {"shop": {"db-1": "b", "backup-1": "b"}}
    changes, refused = assign.plan_all([STACK], _nodes("a", "c"), current,
                                       {"shop": {"data": "b"}})
    # Nothing moves away from its data, nothing is deleted; the rest is placed.
    assert not changes["shop"].delete
    assert not {"db-1", "backup-1"} & set(changes["shop"].put)
    assert _where(changes["shop"].put, "web") == {"a", "c"}
    assert "pinned to node 'b' by volume 'data'" in refused["shop"]
    assert "shared" in refused["shop"]


def test_a_stack_running_before_its_volume_was_recorded_stays_where_it_runs() -> None:
    current = {"shop": {"db-1": "c", "backup-1": "c", **{f"web-{i}": "abc"[i % 3]
                                                         for i in range(1, 7)}}}
    changes, refused = assign.plan_all([STACK], _nodes("a", "b", "c"), current)
    assert not refused
    assert changes["shop"].volumes == {"data": "c"} and not changes["shop"].put


def test_volumes_on_two_nodes_for_one_group_are_refused() -> None:
    two = StackRecord("shop", (ServiceRecord("db", 1, volumes=("data", "logs")),))
    _, refused = assign.plan_all([two], _nodes("a", "b"), {},
                                 {"shop": {"data": "a", "logs": "b"}})
    assert "data on a" in refused["shop"] and "logs on b" in refused["shop"]


def test_a_group_that_no_single_node_can_hold_is_unplaced() -> None:
    big = StackRecord("shop", (ServiceRecord("db", 3, Resources(cpus=3), volumes=("data",)),))
    _, refused = assign.plan_all([big], _nodes("a", "b", "c"), {})
    assert "run on one node" in refused["shop"]


def test_pins_of_names_service_node_and_volume() -> None:
    assert sorted(assign.pins_of(STACK, {"data": "b"})) == [("backup", "b", "data"),
                                                            ("db", "b", "data")]


def test_volume_and_unplaced_records_round_trip_and_refuse_hostile_forms() -> None:
    assert VolumeRecord.from_json("k", VolumeRecord("b").to_json()) == VolumeRecord("b")
    assert Unplaced.from_json("k", Unplaced("why", 3).to_json()) == Unplaced("why", 3)
    assert StackRecord.from_json("k", STACK.to_json()) == STACK
    with pytest.raises(StoreRecordError):
        StackRecord.from_json("k", b'{"project":"p","services":[{"name":"s","replicas":1,'
                                   b'"volumes":["../x"]}]}')
    assert keys.volume("shop", "data") == "volumes/shop/data"


def test_scale_travels_in_the_published_stack() -> None:
    import json

    from stackd.daemon.revision import stack_from_json, with_scale

    text = json.dumps({"name": "shop", "services": {
        "web": {"image": "web", "deploy": {"replicas": 6}},
        "db": {"image": "db", "scale": 2}}})
    scaled = stack_from_json(with_scale(text, {"web": 3, "db": 1}))
    assert scaled.services["web"].replicas == 3 and scaled.services["db"].replicas == 1


def test_a_pinned_service_scaled_to_zero_is_not_reported_stranded() -> None:
    zero = StackRecord("shop", (ServiceRecord("db", 0, volumes=("data",)),
                                ServiceRecord("web", 2)))
    changes, refused = assign.plan_all([zero], _nodes("a"), {}, {"shop": {"data": "b"}})
    assert not refused and sorted(changes["shop"].put) == ["web-1", "web-2"]
