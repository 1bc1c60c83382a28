"""`deploy.mode: global` on a cluster: one slot on every usable node its constraints
allow, as Swarm runs a global service. It was read and dropped: one replica in all."""

from __future__ import annotations

from types import MappingProxyType

from stackd.cluster import assign
from stackd.cluster.records import ServiceRecord, StackRecord
from stackd.scheduler import Node, Resources
from stackd.scheduler.from_stack import from_stack
from stackd.spec.model import Stack

GiB = 1 << 30


def nodes(*names: str, **labels: str) -> list[Node]:
    return [Node(n, 4, 8 * GiB, 4096, MappingProxyType(dict(labels))) for n in names]


STACK = StackRecord("mon", (
    ServiceRecord("agent", 1, Resources(cpus=0.1), mode="global"),
    ServiceRecord("web", 2, Resources(cpus=0.1)),
))


def test_a_global_service_runs_once_on_every_usable_node() -> None:
    changes, refused = assign.plan_all([STACK], nodes("a", "b", "c"), {})
    assert not refused
    put = changes["mon"].put
    assert sorted(n for s, n in put.items() if s.startswith("agent-")) == ["a", "b", "c"]
    assert len([s for s in put if s.startswith("web-")]) == 2


def test_a_node_joining_gets_one_and_a_node_leaving_takes_one_away() -> None:
    three = assign.plan_all([STACK], nodes("a", "b", "c"), {})[0]["mon"].put
    four = assign.plan_all([STACK], nodes("a", "b", "c", "d"), {"mon": three})[0]["mon"]
    assert four.put == {"agent-4": "d"} and four.delete == ()
    now = {**three, **four.put}
    # c is drained: the agent slots shrink to the three nodes left, one on each.
    after = assign.plan_all([STACK], nodes("a", "b", "d"), {"mon": now})[0]["mon"]
    final = {**{k: v for k, v in now.items() if k not in after.delete}, **after.put}
    agents = sorted(n for s, n in final.items() if s.startswith("agent-"))
    assert agents == ["a", "b", "d"]


def test_constraints_choose_the_nodes_of_a_global_service() -> None:
    stack = StackRecord("mon", (ServiceRecord("agent", 1, Resources(cpus=0.1),
                                              ("node.labels.disk == ssd",), mode="global"),))
    usable = [*nodes("a", "b", disk="ssd"), *nodes("c", disk="hdd")]
    put = assign.plan_all([stack], usable, {})[0]["mon"].put
    assert sorted(put.values()) == ["a", "b"]


def test_the_mode_travels_from_the_stack_file_through_the_record() -> None:
    stack = Stack.model_validate({"name": "mon", "services": {
        "agent": {"image": "x", "deploy": {"mode": "global"}}, "web": {"image": "x"}}})
    record = StackRecord.of("mon", from_stack(stack))
    again = StackRecord.from_json("stacks/mon", record.to_json())
    assert [(s.name, s.mode) for s in again.services] == [("agent", "global"),
                                                         ("web", "replicated")]
    assert b'"mode"' not in StackRecord("x", (ServiceRecord("web", 1),)).to_json()
