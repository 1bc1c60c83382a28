"""The dependency graph of a stack's services.

An edge `u → v` means "u depends on v" (u starts after v, stops before it), the way a
person reads `depends_on`. Edge data:

    dependencies: tuple[Dependency, ...]   every field that made the edge, in order
    condition:    Condition                what v must reach before u starts
    required:     bool                     False only for `depends_on: required: false`

Node data: `service` (the ServiceNode). Graph data: `warnings` (list[str]), the optional
dependencies that were skipped because their target isn't defined; the caller decides
how to show them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from itertools import pairwise

import networkx as nx

from stackd.errors import SpecError
from stackd.scheduler.errors import DependencyCycleError, MissingDependencyError
from stackd.scheduler.services import Condition, Dependency, DependencyKind, ServiceNode


def build_graph(services: Iterable[ServiceNode]) -> nx.DiGraph:
    """The DAG of services; raises on undefined targets and on cycles.

    Nodes and edges are inserted in name order so every traversal networkx does later is
    the same for the same stack, whatever order the services came in.
    """
    by_name: dict[str, ServiceNode] = {}
    for svc in services:
        if svc.name in by_name:
            raise SpecError(f"service {svc.name!r} is defined twice", location=svc.location)
        by_name[svc.name] = svc

    graph = nx.DiGraph()
    warnings: list[str] = []
    graph.graph["warnings"] = warnings
    names = sorted(by_name)
    for name in names:
        graph.add_node(name, service=by_name[name])

    for name in names:
        grouped: dict[str, list[Dependency]] = {}
        for dep in by_name[name].depends:
            if dep.target not in by_name:
                if not dep.required:
                    where = f" ({dep.location})" if dep.location else ""
                    warnings.append(
                        f"service {name!r} depends on undefined service {dep.target!r}"
                        f" (required: false), skipped{where}")
                    continue
                raise MissingDependencyError(
                    name, dep.target, str(dep.kind), location=dep.location, known=names)
            grouped.setdefault(dep.target, []).append(dep)
        for target in sorted(grouped):
            deps = tuple(grouped[target])
            graph.add_edge(name, target, dependencies=deps, condition=_condition(deps),
                           required=any(d.required for d in deps))

    cycle = find_cycle(graph)
    if cycle is not None:
        raise _cycle_error(graph, cycle)
    return graph


def _condition(deps: tuple[Dependency, ...]) -> Condition:
    # A target appears at most once under depends_on (it is a mapping); every other
    # kind of edge only needs the target started.
    for dep in deps:
        if dep.kind is DependencyKind.DEPENDS_ON:
            return dep.condition
    return Condition.STARTED


def find_cycle(graph: nx.DiGraph) -> list[str] | None:
    """One cycle as `[a, b, c, a]`, the same one every time, or None.

    Of all strongly connected parts that hold a cycle, take the one with the smallest
    service name, start at that name and take the shortest way back to it (neighbours
    tried in name order), so the message doesn't change between runs.
    """
    candidates: list[set[str]] = [
        part for part in nx.strongly_connected_components(graph)
        if len(part) > 1 or graph.has_edge(next(iter(part)), next(iter(part)))
    ]
    if not candidates:
        return None
    part = min(candidates, key=min)
    start = min(part)
    parent: dict[str, str] = {}
    queue = deque([start])
    seen = {start}
    while queue:
        node = queue.popleft()
        for nxt in sorted(graph.successors(node)):
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if nxt in part and nxt not in seen:
                seen.add(nxt)
                parent[nxt] = node
                queue.append(nxt)
    raise AssertionError("a strongly connected part without a cycle")  # pragma: no cover


def _cycle_error(graph: nx.DiGraph, cycle: list[str]) -> DependencyCycleError:
    lines = []
    first = None
    for u, v in pairwise(cycle):
        dep: Dependency = graph.edges[u, v]["dependencies"][0]
        where = f" ({dep.location})" if dep.location else ""
        lines.append(f"{u} → {v}: {dep.describe()}{where}")
        first = first or dep.location
    return DependencyCycleError(cycle, lines, location=first)


def service_of(graph: nx.DiGraph, name: str) -> ServiceNode:
    """The ServiceNode stored on a graph node."""
    svc: ServiceNode = graph.nodes[name]["service"]
    return svc


def dependencies_of(graph: nx.DiGraph, service: str, target: str) -> tuple[Dependency, ...]:
    """Every Dependency that made the edge `service → target`."""
    deps: tuple[Dependency, ...] = graph.edges[service, target]["dependencies"]
    return deps
