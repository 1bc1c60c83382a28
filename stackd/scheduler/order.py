"""Start and stop order as waves, and Compose's rules for acting on a few services.

A wave is a set of services that may be acted on at the same time; each wave waits
for the one before. Within a wave names are sorted, so the order is stable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import networkx as nx

from stackd.errors import UsageError
from stackd.spec.model import Stack, only_replicated


def start_waves(graph: nx.DiGraph) -> list[list[str]]:
    """Services in start order: a service's wave is one past its deepest dependency."""
    return _layers(graph, reverse=True)


def stop_waves(graph: nx.DiGraph) -> list[list[str]]:
    """Services in stop order: a service's wave is one past its deepest dependent.

    This is the start order turned around at every edge (dependents stop before what
    they depend on), but a service nothing depends on stops in the first wave rather
    than waiting for unrelated chains.
    """
    return _layers(graph, reverse=False)


def _layers(graph: nx.DiGraph, *, reverse: bool) -> list[list[str]]:
    # Longest-path layering by peeling off nodes with no remaining predecessors
    # (Kahn's algorithm, a wave at a time). Edges point dependent → dependency, so
    # for the start order we peel from the dependency side.
    blockers = graph.out_degree if reverse else graph.in_degree
    followers = graph.predecessors if reverse else graph.successors
    remaining: dict[str, int] = {n: d for n, d in blockers()}
    wave = sorted(n for n, d in remaining.items() if d == 0)
    waves: list[list[str]] = []
    while wave:
        waves.append(wave)
        following: list[str] = []
        for node in wave:
            for nxt in followers(node):
                remaining[nxt] -= 1
                if remaining[nxt] == 0:
                    following.append(nxt)
        wave = sorted(following)
    if sum(map(len, waves)) != len(remaining):
        raise ValueError("the graph has a cycle; build it with build_graph")
    return waves


def select_for_up(graph: nx.DiGraph, names: Iterable[str]) -> nx.DiGraph:
    """The named services and everything they depend on, transitively (`up web`).

    Returns the induced subgraph (a copy) so `start_waves` applies to it directly.
    An empty `names` means the whole stack.
    """
    chosen = _check(graph, names)
    if not chosen:
        return graph.copy()
    keep = with_dependencies({n: list(graph.successors(n)) for n in graph}, chosen)
    return graph.subgraph(sorted(keep)).copy()


def with_dependencies(needs: Mapping[str, Iterable[str]], names: Iterable[str]
                      ) -> frozenset[str]:
    """Compose's rule for `up web`: web and everything it needs, transitively.

    `needs` maps a service to the services it must start after (the graph's edges);
    names not in `needs` are dropped, so a stale selection selects nothing.
    """
    chosen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in chosen or name not in needs:
            continue
        chosen.add(name)
        todo.extend(needs[name])
    return frozenset(chosen)


def select_for_stop(graph: nx.DiGraph, names: Iterable[str]) -> nx.DiGraph:
    """The named services and everything that depends on them (`stop db`).

    `stop_waves` of the result puts the dependents first. An empty `names` means the
    whole stack.
    """
    chosen = _check(graph, names)
    if not chosen:
        return graph.copy()
    keep = set(chosen)
    for name in chosen:
        keep |= nx.ancestors(graph, name)
    return graph.subgraph(sorted(keep)).copy()


def _check(graph: nx.DiGraph, names: Iterable[str]) -> list[str]:
    check_named(graph, names)
    return sorted(set(names))


def check_scaled(stack: Stack, scale: Iterable[str]) -> None:
    """`--scale`'s services: each in the stack (Compose's `no such service`), none
    global (Swarm's `scale can only be used with replicated mode`)."""
    names = sorted(scale)
    check_named(stack.services, names)
    for name in names:
        deploy = stack.services[name].deploy
        if deploy is not None and deploy.mode == "global":
            raise UsageError(f"service {name!r}: {only_replicated('--scale')}")


def check_named(services: Iterable[str], names: Iterable[str]) -> None:
    """Compose's `no such service`: every service a command names is in the stack."""
    known = set(services)
    unknown = sorted(set(names) - known)
    if unknown:
        raise UsageError(
            f"no such service: {', '.join(unknown)}",
            hint=f"services in this stack: {', '.join(sorted(known)) or '(none)'}",
        )
