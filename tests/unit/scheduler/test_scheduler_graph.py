"""The dependency graph: every edge source, missing targets, cycles and their messages."""

from __future__ import annotations

import pytest

from stackd.errors import Location, SpecError
from stackd.scheduler import (
    Condition,
    Dependency,
    DependencyCycleError,
    DependencyKind,
    MissingDependencyError,
    ServiceNode,
    build_graph,
    dependencies_of,
    service_of,
)

K = DependencyKind


def svc(name: str, *deps: Dependency | str) -> ServiceNode:
    return ServiceNode(name, depends=tuple(Dependency(d) if isinstance(d, str) else d
                                           for d in deps),
                       location=Location("compose.yaml", 1, 3))


def at(line: int, col: int = 7) -> Location:
    return Location("compose.yaml", line, col)


def test_every_edge_source_becomes_an_edge_with_its_kind_and_condition() -> None:
    g = build_graph([
        svc("app",
            Dependency("db", K.DEPENDS_ON, Condition.HEALTHY, restart=True),
            Dependency("cache", K.LINKS),
            Dependency("vpn", K.NETWORK_MODE),
            Dependency("data", K.VOLUMES_FROM),
            Dependency("shm", K.IPC),
            Dependency("tracer", K.PID),
            Dependency("migrate", K.DEPENDS_ON, Condition.COMPLETED)),
        *(svc(n) for n in ("db", "cache", "vpn", "data", "shm", "tracer", "migrate")),
    ])
    assert sorted(g.successors("app")) == [
        "cache", "data", "db", "migrate", "shm", "tracer", "vpn"]
    kinds = {v: [d.kind for d in dependencies_of(g, "app", v)] for v in g.successors("app")}
    assert kinds == {"db": [K.DEPENDS_ON], "cache": [K.LINKS], "vpn": [K.NETWORK_MODE],
                     "data": [K.VOLUMES_FROM], "shm": [K.IPC], "tracer": [K.PID],
                     "migrate": [K.DEPENDS_ON]}
    assert g.edges["app", "db"]["condition"] is Condition.HEALTHY
    assert g.edges["app", "migrate"]["condition"] is Condition.COMPLETED
    assert g.edges["app", "cache"]["condition"] is Condition.STARTED
    assert dependencies_of(g, "app", "db")[0].restart is True
    assert service_of(g, "app").name == "app"
    assert g.graph["warnings"] == []


def test_two_fields_naming_one_target_share_one_edge_keeping_the_condition() -> None:
    g = build_graph([
        svc("web", Dependency("db", K.LINKS), Dependency("db", K.DEPENDS_ON, Condition.HEALTHY)),
        svc("db"),
    ])
    assert [d.kind for d in dependencies_of(g, "web", "db")] == [K.LINKS, K.DEPENDS_ON]
    assert g.edges["web", "db"]["condition"] is Condition.HEALTHY


def test_missing_target_names_both_ends_and_where() -> None:
    with pytest.raises(MissingDependencyError) as err:
        build_graph([svc("web", Dependency("dbb", location=at(9))), svc("db")])
    assert err.value.exit_code == 2
    assert isinstance(err.value, SpecError)
    assert (err.value.service, err.value.target) == ("web", "dbb")
    assert str(err.value) == (
        "service 'web' refers to undefined service 'dbb' in depends_on (compose.yaml:9:7)\n"
        "  hint: define service 'dbb', fix the name (services: db, web), or mark the "
        "dependency `required: false`")


def test_missing_target_of_a_link_has_no_required_false_hint() -> None:
    with pytest.raises(MissingDependencyError, match=r"^service 'web' refers to undefined "
                       r"service 'x' in links \(compose.yaml:4:7\)\n  hint: define "
                       r"service 'x', fix the name \(services: web\)$"):
        build_graph([svc("web", Dependency("x", K.LINKS, location=at(4)))])


def test_optional_missing_target_is_skipped_with_a_warning() -> None:
    g = build_graph([
        svc("web", Dependency("metrics", required=False, location=at(6)), "db"), svc("db")])
    assert list(g.edges) == [("web", "db")]
    assert g.graph["warnings"] == [
        "service 'web' depends on undefined service 'metrics' (required: false), "
        "skipped (compose.yaml:6:7)"]


def test_optional_dependency_that_exists_is_an_edge_marked_not_required() -> None:
    g = build_graph([svc("web", Dependency("db", required=False)), svc("db")])
    assert g.edges["web", "db"]["required"] is False


def test_cycle_is_printed_in_order_with_locations() -> None:
    with pytest.raises(DependencyCycleError) as err:
        build_graph([
            svc("a", Dependency("b", location=at(3))),
            svc("b", Dependency("c", K.LINKS, location=at(8))),
            svc("c", Dependency("a", K.DEPENDS_ON, Condition.HEALTHY, location=at(13))),
        ])
    assert err.value.cycle == ["a", "b", "c", "a"]
    assert err.value.location == at(3)
    assert err.value.exit_code == 2
    assert str(err.value) == (
        "dependency cycle: a → b → c → a\n"
        "  a → b: depends_on: service_started (compose.yaml:3:7)\n"
        "  b → c: links (compose.yaml:8:7)\n"
        "  c → a: depends_on: service_healthy (compose.yaml:13:7)\n"
        "  hint: remove one of these dependencies")


@pytest.mark.parametrize("order", [[0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [2, 0, 4, 1, 3]])
def test_the_same_cycle_is_reported_whatever_the_input_order(order: list[int]) -> None:
    # One tangle holding the cycles a→c→a and b→c→d→b.
    services = [svc("a", "c"), svc("b", "c"), svc("c", "d", "a"), svc("d", "b"),
                svc("e")]
    with pytest.raises(DependencyCycleError) as err:
        build_graph([services[i] for i in order])
    # The smallest name in a cycle is a; its shortest way back: a → c → a.
    assert err.value.cycle == ["a", "c", "a"]


def test_a_service_depending_on_itself_is_a_cycle() -> None:
    with pytest.raises(DependencyCycleError, match=r"^dependency cycle: web → web\n"):
        build_graph([svc("web", Dependency("web", K.VOLUMES_FROM))])


def test_a_service_defined_twice_is_refused() -> None:
    with pytest.raises(SpecError, match="service 'web' is defined twice"):
        build_graph([svc("web"), svc("web")])


def test_graph_is_the_same_whatever_the_input_order() -> None:
    services = [svc("web", "api", "cache"), svc("api", "db"), svc("db"), svc("cache")]
    one, two = build_graph(services), build_graph(reversed(services))
    assert list(one.nodes) == list(two.nodes) == ["api", "cache", "db", "web"]
    assert list(one.edges) == list(two.edges)
