"""Replica slots and their placement onto nodes of different sizes and labels."""

from __future__ import annotations

import random
from types import MappingProxyType

import pytest

from stackd.errors import ConflictError, Location, SpecError, UsageError
from stackd.scheduler import (
    Node,
    Resources,
    ServiceNode,
    Slot,
    UnschedulableError,
    build_graph,
    place,
    slots,
)

GiB = 1 << 30
MiB = 1 << 20


def node(name: str, cpus: float, memory: int, pids: int, **labels: str) -> Node:
    return Node(name, cpus, memory, pids, MappingProxyType(labels))


BIG = node("big", 8, 16 * GiB, 4096, zone="a", disk="ssd")
MID = node("mid", 4, 8 * GiB, 2048, zone="b", disk="ssd")
SMALL = node("small", 2, 4 * GiB, 1024, zone="b", disk="hdd")
NODES = [BIG, MID, SMALL]


def service(name: str, replicas: int = 1, cpus: float | None = None,
            memory: int | None = None, constraints: tuple[str, ...] = ()) -> ServiceNode:
    return ServiceNode(name, replicas=replicas,
                       reservations=Resources(cpus=cpus, memory=memory),
                       constraints=constraints, location=Location("compose.yaml", 4, 3))


def where(placement_slots: list[Slot], strategy: str = "spread",
          nodes: list[Node] = NODES) -> dict[str, str]:
    p = place(placement_slots, nodes, strategy)  # type: ignore[arg-type]
    return {str(s): n for s, n in p.assignments.items()}


# ------------------------------------------------------------------------- slots


def test_replicas_become_numbered_slots_in_service_order() -> None:
    got = slots([service("web", 3), service("db"), service("off", 0)])
    assert [(s.service, s.index) for s in got] == [("db", 1), ("web", 1), ("web", 2),
                                                   ("web", 3)]


def test_slots_compare_by_service_and_index_only() -> None:
    (slot,) = slots([service("web", cpus=1)])
    assert slot == Slot("web", 1)
    assert {slot: "x"}[Slot("web", 1)] == "x"
    assert slot.needs == Resources(cpus=1)


def test_slots_can_be_made_from_the_graph() -> None:
    g = build_graph([service("web", 2), service("db")])
    assert [str(s) for s in slots(g)] == ["db-1", "web-1", "web-2"]


def test_reservations_fall_back_to_limits_field_by_field() -> None:
    svc = ServiceNode("web", reservations=Resources(memory=256 * MiB),
                      limits=Resources(cpus=2, memory=GiB, pids=100))
    (slot,) = slots([svc])
    assert slot.needs == Resources(cpus=2, memory=256 * MiB, pids=100)


def test_negative_replicas_are_a_spec_error() -> None:
    with pytest.raises(SpecError, match="replicas must be 0 or more, not -1"):
        slots([service("web", -1)])


# ---------------------------------------------------------------------- spread


def test_spread_puts_replicas_of_a_service_on_different_nodes() -> None:
    assert where(slots([service("web", 6, cpus=0.5)])) == {
        "web-1": "big", "web-2": "mid", "web-3": "small",
        "web-4": "big", "web-5": "mid", "web-6": "small"}


def test_spread_breaks_ties_by_the_least_loaded_node() -> None:
    # db is placed first (it asks for the most) and lands on big; web's first replicas
    # then go to the emptier nodes.
    got = where(slots([service("db", cpus=4, memory=8 * GiB), service("web", 3, cpus=1)]))
    assert got == {"db-1": "big", "web-1": "mid", "web-2": "small", "web-3": "big"}


def test_spread_skips_nodes_that_are_full() -> None:
    # small fits one replica of 2 CPUs, mid two, big four.
    got = where(slots([service("web", 7, cpus=2)]))
    assert sorted(got.values()) == ["big"] * 4 + ["mid"] * 2 + ["small"]


# --------------------------------------------------------------------- binpack


def test_binpack_fills_the_most_loaded_node_that_still_fits() -> None:
    got = where(slots([service("db", cpus=4), service("web", 5, cpus=1)]), "binpack")
    assert got == {"db-1": "big", "web-1": "big", "web-2": "big", "web-3": "big",
                   "web-4": "big", "web-5": "mid"}


def test_binpack_measures_load_by_the_scarcest_resource() -> None:
    # After "mem" takes 3/4 of mid's memory, mid is the most loaded node, so the
    # small CPU-only service joins it there.
    got = where(slots([service("mem", memory=6 * GiB, constraints=("node.hostname == mid",)),
                       service("tiny", cpus=0.1)]), "binpack")
    assert got == {"mem-1": "mid", "tiny-1": "mid"}


# ------------------------------------------------------------------ constraints


@pytest.mark.parametrize(("constraint", "nodes"), [
    ("node.labels.zone == b", {"mid", "small"}),
    ("node.labels.zone==B", {"mid", "small"}),  # values compare without case, as in Swarm
    ("node.labels.disk != hdd", {"big", "mid"}),
    ("node.labels.gpu == yes", set()),
    ("node.labels.gpu != yes", {"big", "mid", "small"}),
    ("node.hostname == small", {"small"}),
    ("node.id != big", {"mid", "small"}),
    ("node.role == manager", {"big", "mid", "small"}),
    ("node.platform.os == linux", {"big", "mid", "small"}),
])
def test_constraints_choose_nodes_by_label_and_attribute(constraint: str,
                                                         nodes: set[str]) -> None:
    (slot,) = slots([service("web", constraints=(constraint,))])
    assert {n.name for n in NODES if all(c.matches(n) for c in slot.constraints)} == nodes


def test_spread_honours_constraints() -> None:
    got = where(slots([service("web", 4, cpus=1, constraints=("node.labels.zone == b",
                                                              "node.labels.disk == ssd"))]))
    assert set(got.values()) == {"mid"}


@pytest.mark.parametrize(("text", "message"), [
    ("zone=b", r"placement constraint 'zone=b' is not `KEY == VALUE` or `KEY != VALUE` "
               r"\(compose.yaml:4:3\)"),
    ("node.labels. == b", r"unknown attribute 'node.labels.'"),
    ("engine.labels.x == y", r"unknown attribute 'engine.labels.x'"),
])
def test_malformed_constraints_are_spec_errors_at_the_service(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        slots([service("web", constraints=(text,))])


@pytest.mark.parametrize("strategy", ["spread", "binpack"])
def test_max_replicas_per_node_caps_each_node(strategy: str) -> None:
    svc = ServiceNode("web", replicas=4, reservations=Resources(cpus=0.5), max_per_node=2)
    got = where(slots([svc]), strategy)
    assert sorted(got.values()).count("big") == 2
    assert all(sorted(got.values()).count(n) <= 2 for n in ("big", "mid", "small"))


def test_more_replicas_than_the_per_node_cap_allows_are_refused() -> None:
    svc = ServiceNode("web", replicas=5, max_per_node=2,
                      constraints=("node.labels.zone == b",))
    with pytest.raises(UnschedulableError) as err:
        place(slots([svc]), NODES)
    assert str(err.value) == (
        "service 'web' wants 5 replicas but may run at most 2 per node "
        "(max_replicas_per_node) on 2 eligible nodes (mid, small)\n"
        "  hint: lower the replicas of 'web' or raise its max_replicas_per_node")


def test_a_per_node_cap_below_one_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="max_replicas_per_node must be 1 or more, not 0"):
        slots([ServiceNode("web", max_per_node=0)])


# -------------------------------------------------------------------- refusals


def test_overcommit_is_refused_naming_the_service_and_the_numbers() -> None:
    with pytest.raises(UnschedulableError) as err:
        place(slots([service("web", 15, cpus=1, memory=512 * MiB)]), NODES)
    assert isinstance(err.value, ConflictError)
    assert err.value.service == "web"
    assert str(err.value) == (
        "cannot place replica 15 of 15 of service 'web': it needs 1 CPU, 512 MiB memory, "
        "0 pids and no node has that free (big has 0 CPUs, 12 GiB memory, 4096 pids; mid "
        "has 0 CPUs, 6 GiB memory, 2048 pids; small has 0 CPUs, 3 GiB memory, 1024 pids); "
        "the stack reserves 15 CPUs, 7.5 GiB memory, 0 pids in all, the nodes have 14 CPUs, "
        "28 GiB memory, 7168 pids\n"
        "  hint: lower the replicas or reservations of 'web' (or of other services), "
        "or add capacity")


def test_a_replica_bigger_than_every_node_is_refused_as_such() -> None:
    with pytest.raises(UnschedulableError) as err:
        place(slots([service("db", cpus=2, memory=32 * GiB)]), NODES, "binpack")
    assert str(err.value) == (
        "service 'db' needs 2 CPUs, 32 GiB memory, 0 pids per replica, more than any node "
        "it may run on has in total (largest: big with 8 CPUs, 16 GiB memory, 4096 pids)\n"
        "  hint: lower deploy.resources.reservations (or limits) of 'db'")


def test_too_big_for_the_nodes_its_constraints_allow() -> None:
    with pytest.raises(UnschedulableError, match=r"largest: mid with 4 CPUs"):
        place(slots([service("db", cpus=6, constraints=("node.labels.zone == b",))]), NODES)


def test_constraints_no_node_meets_are_refused_listing_the_nodes() -> None:
    with pytest.raises(UnschedulableError) as err:
        place(slots([service("gpu", constraints=("node.labels.gpu == yes",))]), NODES)
    assert str(err.value) == (
        "service 'gpu': no node satisfies its placement constraints node.labels.gpu == yes; "
        "nodes: big (disk=ssd, zone=a); mid (disk=ssd, zone=b); small (disk=hdd, zone=b)\n"
        "  hint: label a node to match, or change deploy.placement.constraints of 'gpu'")


def test_pids_count_like_any_other_resource() -> None:
    svc = ServiceNode("fork", replicas=2, limits=Resources(pids=800))
    with pytest.raises(UnschedulableError, match="replica 2 of 2 of service 'fork'"):
        place(slots([svc]), [SMALL])


def test_unknown_strategy_and_duplicate_nodes_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="unknown placement strategy 'random'"):
        place([], NODES, "random")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="node names must be unique"):
        place([], [BIG, BIG])


# ------------------------------------------------------------------ the result


def test_placement_reports_per_node_slots_and_reservations() -> None:
    p = place(slots([service("web", 3, cpus=0.5, memory=GiB)]), NODES)
    assert p.node_of(Slot("web", 2)) == "mid"
    assert p.slots_on("small") == [Slot("web", 3)]
    assert p.reserved_on("big") == Resources(cpus=0.5, memory=GiB, pids=0)
    assert [n.name for n in p.nodes] == ["big", "mid", "small"]


@pytest.mark.parametrize("strategy", ["spread", "binpack"])
def test_placement_is_the_same_whatever_the_order_of_nodes_and_slots(strategy: str) -> None:
    services = [service("web", 5, cpus=0.5, memory=GiB), service("db", 2, cpus=2),
                service("cache", 3, memory=2 * GiB, constraints=("node.labels.zone == b",))]
    want = where(slots(services), strategy)
    rng = random.Random(7)
    for _ in range(5):
        shuffled_nodes = rng.sample(NODES, len(NODES))
        shuffled_slots = rng.sample(slots(services), 10)
        assert where(shuffled_slots, strategy, shuffled_nodes) == want


def test_cpu_fractions_add_up_exactly() -> None:
    # Ten 0.1-CPU replicas fill a 1-CPU node exactly; float sums would overshoot.
    p = place(slots([service("w", 10, cpus=0.1)]), [node("one", 1, GiB, 100)])
    assert len(p.slots_on("one")) == 10


def test_kept_slots_stay_and_the_rest_are_spread_around_them() -> None:
    """Cluster mode: a node went down; its slots move, every other slot stays put."""
    a, b, c = (node(n, 4, 8 * GiB, 1024) for n in ("a", "b", "c"))
    six = slots([service("web", replicas=6, cpus=1)])
    before = place(six, [a, b, c]).assignments
    survivors = {s: n for s, n in before.items() if n != "c"}
    after = place(six, [a, b], kept=survivors).assignments
    assert {s: n for s, n in after.items() if s in survivors} == survivors
    assert sorted(after.values()) == ["a", "a", "a", "b", "b", "b"]


def test_kept_slots_count_against_room_and_the_per_node_cap() -> None:
    a, b = node("a", 2, 8 * GiB, 1024), node("b", 2, 8 * GiB, 1024)
    svc = ServiceNode("web", replicas=4, reservations=Resources(cpus=1), max_per_node=2)
    four = slots([svc])
    kept = {four[0]: "a", four[1]: "a"}
    placed = place(four, [a, b], kept=kept).assignments
    assert placed == {**kept, four[2]: "b", four[3]: "b"}
    five = slots([ServiceNode("web", replicas=5, reservations=Resources(cpus=1),
                              max_per_node=2)])
    with pytest.raises(UnschedulableError, match="web"):
        place(five, [a, b], kept={five[0]: "a", five[1]: "a"})
    with pytest.raises(UsageError, match="node 'gone'"):
        place(four, [a, b], kept={four[0]: "gone"})


# ------------------------------------------------------------- spread preferences


def zoned(*names_zones: str) -> list[Node]:
    out = []
    for item in names_zones:
        name, _, zone = item.partition("=")
        out.append(node(name, 4, 8 * GiB, 1024, **({"zone": zone} if zone else {})))
    return out


def spread_over(*labels: str, replicas: int, max_per_node: int | None = None) -> list[Slot]:
    return slots([ServiceNode("web", replicas=replicas, reservations=Resources(cpus=0.5),
                              max_per_node=max_per_node,
                              preferences=tuple(("spread", f"node.labels.{label}")
                                                for label in labels))])


def per_group(placement: dict[Slot, str], group_of: dict[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for n in placement.values():
        out[group_of[n]] = out.get(group_of[n], 0) + 1
    return out


@pytest.mark.parametrize("strategy", ["spread", "binpack"])
def test_a_spread_preference_splits_replicas_evenly_across_label_values(strategy: str) -> None:
    # Two nodes in east, one in west: by node alone west would get a third; by zone, half.
    nodes = zoned("a=east", "b=east", "c=west")
    got = place(spread_over("zone", replicas=6), nodes, strategy).assignments  # type: ignore[arg-type]
    assert per_group(got, {"a": "east", "b": "east", "c": "west"}) == {"east": 3, "west": 3}
    assert sorted(got.values()).count("c") == 3
    without = place(slots([service("web", 6, cpus=0.5)]), nodes).assignments
    assert sorted(without.values()).count("c") == 2


def test_nodes_without_the_label_are_one_group() -> None:
    nodes = zoned("a=east", "b", "c", "d")
    got = place(spread_over("zone", replicas=4), nodes).assignments
    assert sorted(got.values()).count("a") == 2


def test_spread_preferences_nest_and_count_kept_slots() -> None:
    nodes = [node(n, 4, 8 * GiB, 1024, zone=z, rack=r)
             for n, z, r in (("a", "east", "1"), ("b", "east", "1"), ("c", "east", "2"),
                             ("d", "west", "1"))]
    got = place(spread_over("zone", "rack", replicas=4), nodes).assignments
    # Two per zone; in east, one per rack (a or b, and c).
    assert sorted(got.values()).count("d") == 2
    assert sorted(got.values()).count("c") == 1
    four = spread_over("zone", replicas=4)
    kept = {four[0]: "d", four[1]: "d"}
    after = place(four, nodes, kept=kept).assignments
    assert [after[s] for s in four[2:]] == ["a", "b"]  # west holds its half already


def test_a_spread_group_that_is_full_gives_way_to_the_others() -> None:
    nodes = zoned("a=east", "b=west")
    got = place(spread_over("zone", replicas=4, max_per_node=3), nodes).assignments
    assert sorted(got.values()) == ["a", "a", "b", "b"]
    got = place(slots([ServiceNode("web", replicas=5, reservations=Resources(cpus=1),
                                   preferences=(("spread", "node.labels.zone"),))]),
                [node("a", 4, 8 * GiB, 1024, zone="east"),
                 node("b", 1, 8 * GiB, 1024, zone="west")]).assignments
    assert sorted(got.values()) == ["a", "a", "a", "a", "b"]
    with pytest.raises(UnschedulableError, match="web"):
        place(spread_over("zone", replicas=20), zoned("a=east", "b=west"))


@pytest.mark.parametrize(("pref", "message"), [
    (("spread", "node.hostname"), "cannot spread over 'node.hostname'"),
    (("spread", "node.labels."), "cannot spread over 'node.labels.'"),
    (("binpack", "node.labels.zone"), "placement preference 'binpack' is not known"),
])
def test_preferences_stackd_cannot_follow_are_spec_errors(pref: tuple[str, str],
                                                          message: str) -> None:
    with pytest.raises(SpecError, match=message) as err:
        slots([ServiceNode("web", preferences=(pref,), location=Location("c.yaml", 9, 5))])
    assert err.value.location == Location("c.yaml", 9, 5)
