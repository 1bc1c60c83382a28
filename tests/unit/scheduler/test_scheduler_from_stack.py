"""The spec model → the scheduler's ServiceNodes: every edge source and resource field."""

from __future__ import annotations

from typing import Any

import pytest

from stackd.errors import Location
from stackd.scheduler import (
    Condition,
    Dependency,
    DependencyKind,
    MissingDependencyError,
    Resources,
    build_graph,
    start_waves,
)
from stackd.scheduler.from_stack import from_stack
from stackd.spec import load_text
from stackd.spec.model import Stack

K = DependencyKind
MiB = 1 << 20


def stack(services: dict[str, Any]) -> Stack:
    return Stack.model_validate({"name": "shop", "services": services})


def test_every_compose_edge_source_becomes_a_dependency() -> None:
    nodes = {n.name: n for n in from_stack(stack({
        "app": {
            "image": "app",
            "depends_on": {
                "db": {"condition": "service_healthy", "restart": True},
                "metrics": {"condition": "service_started", "required": False},
            },
            "links": ["cache:redis", "queue"],
            "volumes_from": ["data:ro", "container:outside"],
        },
        "sidecar": {"image": "s", "network_mode": "service:app", "ipc": "service:shm",
                    "pid": "service:app"},
        "plain": {"image": "p", "network_mode": "host", "ipc": "shareable", "pid": "host"},
        **{n: {"image": n} for n in ("db", "cache", "queue", "data", "shm")},
    }))}
    assert [(d.target, d.kind) for d in nodes["app"].depends] == [
        ("db", K.DEPENDS_ON), ("metrics", K.DEPENDS_ON), ("cache", K.LINKS),
        ("queue", K.LINKS), ("data", K.VOLUMES_FROM)]
    db, metrics = nodes["app"].depends[:2]
    assert (db.condition, db.restart, db.required) == (Condition.HEALTHY, True, True)
    assert (metrics.condition, metrics.required) == (Condition.STARTED, False)
    assert nodes["sidecar"].depends == (Dependency("app", K.NETWORK_MODE),
                                        Dependency("shm", K.IPC), Dependency("app", K.PID))
    assert nodes["plain"].depends == ()


def test_short_depends_on_list_means_started_and_required() -> None:
    (web,) = [n for n in from_stack(stack({"web": {"image": "w", "depends_on": ["db"]},
                                           "db": {"image": "d"}})) if n.name == "web"]
    assert web.depends == (Dependency("db"),)


def test_a_loaded_stack_orders_and_reports_like_the_core() -> None:
    s = stack({"web": {"image": "w", "depends_on": {"api": {"condition": "service_healthy"}}},
               "api": {"image": "a", "links": ["db"]},
               "db": {"image": "d"},
               "opt": {"image": "o", "depends_on": {"gone": {"required": False}}}})
    g = build_graph(from_stack(s))
    assert start_waves(g) == [["db", "opt"], ["api"], ["web"]]
    assert g.graph["warnings"] == [
        "service 'opt' depends on undefined service 'gone' (required: false), skipped"]
    with pytest.raises(MissingDependencyError, match="'api' refers to undefined service 'dbx'"):
        build_graph(from_stack(stack({"api": {"image": "a", "links": ["dbx"]}})))


@pytest.mark.parametrize(("service", "replicas"), [
    ({}, 1),
    ({"scale": 3}, 3),
    ({"deploy": {"replicas": 4}}, 4),
    ({"deploy": {"replicas": 0}}, 0),
])
def test_replicas_come_from_deploy_or_scale(service: dict[str, Any], replicas: int) -> None:
    (web,) = from_stack(stack({"web": {"image": "w", **service}}))
    assert web.replicas == replicas


def test_resources_and_constraints() -> None:
    (web,) = from_stack(stack({"web": {
        "image": "w",
        "cpus": 3, "mem_limit": "1g",
        "deploy": {
            "resources": {"limits": {"cpus": "2", "pids": -1},
                          "reservations": {"cpus": "0.25", "memory": "64m"}},
            "placement": {"constraints": ["node.labels.zone == b"],
                          "max_replicas_per_node": 2},
        },
    }}))
    assert web.reservations == Resources(cpus=0.25, memory=64 * MiB)
    # deploy's limits win; the service-level fields fill what deploy leaves unset, and a
    # pids limit of -1 (unlimited) reserves nothing.
    assert web.limits == Resources(cpus=2, memory=1024 * MiB, pids=None)
    assert web.constraints == ("node.labels.zone == b",)
    assert web.max_per_node == 2


def test_service_level_limits_alone_are_limits() -> None:
    (web,) = from_stack(stack({"web": {"image": "w", "cpus": "1.5", "pids_limit": 200}}))
    assert web.limits == Resources(cpus=1.5, pids=200)
    assert web.needs == Resources(cpus=1.5, pids=200)
    (unlimited,) = from_stack(stack({"web": {"image": "w", "pids_limit": -1}}))
    assert unlimited.needs == Resources()


def test_locations_of_a_loaded_file_reach_every_dependency() -> None:
    s = load_text("""\
services:
  web:
    image: w
    depends_on:
      db: {condition: service_healthy}
    links:
      - db
    volumes_from: [data]
    ipc: service:data
    pid: "service:db"
    network_mode: service:db
  db:
    image: d
  data:
    image: d
""", project_name="shop")
    web = next(n for n in from_stack(s) if n.name == "web")
    assert web.location == Location("compose.yaml", 2, 3)
    assert [(d.kind.value, str(d.location)) for d in web.depends] == [
        ("depends_on", "compose.yaml:5:7"),
        ("links", "compose.yaml:7:9"),
        ("network_mode", "compose.yaml:11:5"),
        ("ipc", "compose.yaml:9:5"),
        ("pid", "compose.yaml:10:5"),
        ("volumes_from", "compose.yaml:8:20"),
    ]


def test_node_local_volumes_are_named_unshared_volumes_only() -> None:
    from stackd.errors import SpecError
    from stackd.scheduler.from_stack import node_local_volumes

    text = """
name: shop
services:
  db: {image: db, volumes: [data:/var/lib/db, media:/media, /anon, /srv:/srv]}
  web: {image: web, volumes: [media:/media]}
volumes:
  data: {}
  media: {x-stackd: {shared: true}}
"""
    assert node_local_volumes(load_text(text)) == {"db": ("data",)}
    bad = text.replace("{shared: true}", "yes")
    with pytest.raises(SpecError, match="x-stackd"):
        node_local_volumes(load_text(bad))


def test_placement_preferences_reach_the_slots() -> None:
    from stackd.scheduler import slots

    (web,) = from_stack(stack({"web": {"image": "w", "deploy": {"replicas": 2, "placement": {
        "preferences": [{"spread": "node.labels.zone"}, {"spread": "node.labels.rack"}]}}}}))
    assert web.preferences == (("spread", "node.labels.zone"), ("spread", "node.labels.rack"))
    assert [s.spread for s in slots([web])] == [("zone", "rack")] * 2
