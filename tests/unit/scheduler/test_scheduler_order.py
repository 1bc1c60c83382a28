"""Start/stop waves on realistic stacks, and choosing services the way Compose does."""

from __future__ import annotations

import networkx as nx
import pytest

from stackd.errors import UsageError
from stackd.scheduler import (
    Condition,
    Dependency,
    DependencyKind,
    ServiceNode,
    build_graph,
    select_for_stop,
    select_for_up,
    start_waves,
    stop_waves,
)


def svc(name: str, *deps: str) -> ServiceNode:
    return ServiceNode(name, depends=tuple(Dependency(d) for d in deps))


# A shop: a proxy in front of two apps, a worker, a one-shot migration that must
# finish before the API starts, and a sidecar sharing the API's network namespace.
SHOP = [
    svc("proxy", "web", "api"),
    svc("web", "api"),
    ServiceNode("api", depends=(
        Dependency("db", condition=Condition.HEALTHY),
        Dependency("migrate", condition=Condition.COMPLETED),
        Dependency("cache", DependencyKind.LINKS))),
    svc("migrate", "db"),
    svc("worker", "db", "queue"),
    svc("db"),
    svc("cache"),
    svc("queue"),
    ServiceNode("envoy", depends=(Dependency("api", DependencyKind.NETWORK_MODE),)),
    svc("docs"),
]


def test_start_waves_put_each_service_one_past_its_deepest_dependency() -> None:
    assert start_waves(build_graph(SHOP)) == [
        ["cache", "db", "docs", "queue"],
        ["migrate", "worker"],
        ["api"],
        ["envoy", "web"],
        ["proxy"],
    ]


def test_stop_waves_put_dependents_before_what_they_depend_on() -> None:
    assert stop_waves(build_graph(SHOP)) == [
        ["docs", "envoy", "proxy", "worker"],
        ["queue", "web"],  # queue's only dependent, worker, stopped in the first wave
        ["api"],
        ["cache", "migrate"],
        ["db"],
    ]


def test_every_edge_is_respected_by_both_orders() -> None:
    g = build_graph(SHOP)
    start = {n: i for i, wave in enumerate(start_waves(g)) for n in wave}
    stop = {n: i for i, wave in enumerate(stop_waves(g)) for n in wave}
    assert sorted(start) == sorted(stop) == sorted(g)
    for dependent, dependency in g.edges:
        assert start[dependent] > start[dependency]
        assert stop[dependent] < stop[dependency]


def test_waves_do_not_depend_on_the_order_services_were_given() -> None:
    assert start_waves(build_graph(reversed(SHOP))) == start_waves(build_graph(SHOP))
    assert stop_waves(build_graph(reversed(SHOP))) == stop_waves(build_graph(SHOP))


def test_an_empty_stack_has_no_waves() -> None:
    assert start_waves(build_graph([])) == [] == stop_waves(build_graph([]))


def test_a_graph_with_a_cycle_is_refused_rather_than_half_ordered() -> None:
    g = nx.DiGraph([("a", "b"), ("b", "a")])
    with pytest.raises(ValueError, match="cycle"):
        start_waves(g)


def test_up_one_service_brings_everything_it_depends_on() -> None:
    g = select_for_up(build_graph(SHOP), ["web"])
    assert sorted(g) == ["api", "cache", "db", "migrate", "web"]
    assert start_waves(g) == [["cache", "db"], ["migrate"], ["api"], ["web"]]
    # The edges keep their conditions, so the reconciler can gate on them.
    assert g.edges["api", "db"]["condition"] is Condition.HEALTHY


def test_up_several_services_takes_the_union() -> None:
    g = select_for_up(build_graph(SHOP), ["worker", "docs", "worker"])
    assert start_waves(g) == [["db", "docs", "queue"], ["worker"]]


def test_stop_one_service_stops_its_dependents_first() -> None:
    g = select_for_stop(build_graph(SHOP), ["db"])
    assert stop_waves(g) == [["envoy", "proxy", "worker"], ["web"], ["api"],
                             ["migrate"], ["db"]]


def test_stop_a_leaf_stops_only_it() -> None:
    assert stop_waves(select_for_stop(build_graph(SHOP), ["proxy"])) == [["proxy"]]


def test_no_names_means_the_whole_stack() -> None:
    g = build_graph(SHOP)
    assert sorted(select_for_up(g, [])) == sorted(select_for_stop(g, [])) == sorted(g)


def test_selecting_does_not_change_the_graph_it_was_given() -> None:
    g = build_graph(SHOP)
    select_for_up(g, ["web"]).remove_node("web")
    assert "web" in g


def test_unknown_service_is_a_usage_error_listing_the_services() -> None:
    with pytest.raises(UsageError) as err:
        select_for_up(build_graph([svc("web"), svc("db")]), ["wbe"])
    assert str(err.value) == "no such service: wbe\n  hint: services in this stack: db, web"
    assert err.value.exit_code == 2
