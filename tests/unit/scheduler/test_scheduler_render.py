"""The graph drawn as text, dot and Mermaid (golden strings)."""

from __future__ import annotations

import subprocess

from support.hostpackages import require_command

from stackd.scheduler import Condition, Dependency, DependencyKind, ServiceNode, build_graph
from stackd.scheduler.render import render, to_dot, to_mermaid, to_text

GRAPH = build_graph([
    ServiceNode("web", depends=(Dependency("api", condition=Condition.HEALTHY),
                                Dependency("cache", DependencyKind.LINKS))),
    ServiceNode("api", depends=(Dependency("db", condition=Condition.HEALTHY),
                                Dependency("cache", required=False))),
    ServiceNode("worker", depends=(Dependency("db", restart=True),)),
    ServiceNode("db"),
    ServiceNode("cache"),
])


def test_text_is_an_indented_tree_with_conditions_on_the_edges() -> None:
    assert to_text(GRAPH) == """\
web
├── api  [depends_on: service_healthy]
│   ├── cache  [depends_on: service_started, required: false]
│   └── db  [depends_on: service_healthy]
└── cache  [links]
worker
└── db  [depends_on: service_started, restart: true]
"""


def test_text_marks_a_subtree_already_shown() -> None:
    g = build_graph([ServiceNode("a", depends=(Dependency("b"), Dependency("c"))),
                     ServiceNode("b", depends=(Dependency("c"),)),
                     ServiceNode("c", depends=(Dependency("d"),)), ServiceNode("d")])
    assert to_text(g) == """\
a
├── b  [depends_on: service_started]
│   └── c  [depends_on: service_started]
│       └── d  [depends_on: service_started]
└── c  [depends_on: service_started]  (see above)
"""


def test_text_of_a_chain_longer_than_the_recursion_limit() -> None:
    """`stackd graph` of 1,500 services each depending on the one before ended in a
    RecursionError traceback."""
    n = 1500
    g = build_graph([ServiceNode(f"s{i}", depends=(Dependency(f"s{i - 1}"),) if i else ())
                     for i in range(n)])
    lines = to_text(g).splitlines()
    assert len(lines) == n and lines[0] == f"s{n - 1}"
    assert lines[-1] == " " * 4 * (n - 2) + "└── s0  [depends_on: service_started]"


def test_dot() -> None:
    assert to_dot(GRAPH, "shop") == """\
digraph "shop" {
  rankdir=TB;
  node [shape=box];
  "api";
  "cache";
  "db";
  "web";
  "worker";
  "api" -> "cache" [label="depends_on: service_started, required: false", style=dashed];
  "api" -> "db" [label="depends_on: service_healthy"];
  "web" -> "api" [label="depends_on: service_healthy"];
  "web" -> "cache" [label="links"];
  "worker" -> "db" [label="depends_on: service_started, restart: true"];
}
"""


def test_mermaid() -> None:
    assert to_mermaid(GRAPH, "shop") == """\
---
title: shop
---
flowchart TD
  s0["api"]
  s1["cache"]
  s2["db"]
  s3["web"]
  s4["worker"]
  s0 -.->|"depends_on: service_started, required: false"| s1
  s0 -->|"depends_on: service_healthy"| s2
  s3 -->|"depends_on: service_healthy"| s0
  s3 -->|"links"| s1
  s4 -->|"depends_on: service_started, restart: true"| s2
"""


def test_empty_stack_renders_empty() -> None:
    assert render(build_graph([]), "text") == ""


def test_graphviz_accepts_the_dot_output() -> None:
    require_command("dot", "graphviz")
    svg = subprocess.run(["dot", "-Tsvg"], input=to_dot(GRAPH), capture_output=True,
                         text=True, check=True).stdout
    assert "<svg" in svg and ">worker</text>" in svg
