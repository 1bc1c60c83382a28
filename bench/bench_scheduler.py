"""Scheduler benchmark: graph, waves, slots and placement for a big generated stack.

2,000 services with 10,000 replica slots in all, each depending on up to three
earlier services (every edge kind represented), placed onto 50 nodes of mixed
sizes and labels with both strategies. Prints timings (goal: each stage < 1 s) and,
for placement, the ratio against a naive scan of every node per slot measured in the
same run. Never asserts on time.

    .venv/bin/python bench/bench_scheduler.py [--services N] [--slots N] [--nodes N]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from types import MappingProxyType
from typing import TypeVar

from stackd.scheduler import (
    Condition,
    Dependency,
    DependencyKind,
    Node,
    Placement,
    Resources,
    ServiceNode,
    Slot,
    build_graph,
    place,
    select_for_stop,
    select_for_up,
    slots,
    start_waves,
    stop_waves,
)

MiB = 1 << 20
GiB = 1 << 30
T = TypeVar("T")


def generate(services: int, total_slots: int, nodes: int, seed: int = 1,
             ) -> tuple[list[ServiceNode], list[Node]]:
    rng = random.Random(seed)
    # Replicas: every service at least one, the rest scattered at random.
    replicas = [1] * services
    for _ in range(total_slots - services):
        replicas[rng.randrange(services)] += 1
    kinds = list(DependencyKind)
    out = []
    for i in range(services):
        deps = []
        for target in sorted(set(rng.sample(range(i), min(i, rng.randint(0, 3))))):
            kind = rng.choice(kinds)
            deps.append(Dependency(f"svc{target:04d}", kind,
                                   rng.choice(list(Condition))
                                   if kind is DependencyKind.DEPENDS_ON
                                   else Condition.STARTED))
        constraints = (("node.labels.zone == a",) if i % 10 == 0 else
                       ("node.labels.disk != hdd",) if i % 10 == 1 else ())
        out.append(ServiceNode(
            f"svc{i:04d}", depends=tuple(deps), replicas=replicas[i],
            reservations=Resources(cpus=rng.choice([0.01, 0.05, 0.1]),
                                   memory=rng.choice([16, 32, 64]) * MiB),
            limits=Resources(pids=rng.choice([None, 50, 100])),
            constraints=constraints))
    node_list = [
        Node(f"node{j:02d}", cpus=(16, 32, 64)[j % 3], memory=(32, 64, 128)[j % 3] * GiB,
             pids=65536, labels=MappingProxyType({"zone": "abc"[j % 3],
                                                  "disk": "ssd" if j % 4 else "hdd"}))
        for j in range(nodes)
    ]
    return out, node_list


def timed(label: str, fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - start
    print(f"  {label:<34} {elapsed * 1000:9.1f} ms")
    return result, elapsed


def naive_spread(slot_list: list[Slot], nodes: list[Node]) -> dict[Slot, str]:
    """The obvious way, as a yardstick: scan every node for every slot."""
    used = {n.name: [0.0, 0, 0] for n in nodes}
    count: dict[tuple[str, str], int] = {}
    out = {}
    for slot in slot_list:
        need = slot.needs
        best = None
        for n in nodes:
            if not all(c.matches(n) for c in slot.constraints):
                continue
            u = used[n.name]
            if (u[0] + (need.cpus or 0) > n.cpus or u[1] + (need.memory or 0) > n.memory
                    or u[2] + (need.pids or 0) > n.pids):
                continue
            key = (count.get((slot.service, n.name), 0),
                   max(u[0] / n.cpus, u[1] / n.memory, u[2] / n.pids), n.name)
            if best is None or key < best[0]:
                best = (key, n)
        assert best is not None
        n = best[1]
        u = used[n.name]
        u[0] += need.cpus or 0
        u[1] += need.memory or 0
        u[2] += need.pids or 0
        count[(slot.service, n.name)] = count.get((slot.service, n.name), 0) + 1
        out[slot] = n.name
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--services", type=int, default=2000)
    ap.add_argument("--slots", type=int, default=10000)
    ap.add_argument("--nodes", type=int, default=50)
    args = ap.parse_args()

    services, nodes = generate(args.services, args.slots, args.nodes)
    edges = sum(len(s.depends) for s in services)
    print(f"stack: {len(services)} services, {edges} dependencies, "
          f"{sum(s.replicas for s in services)} slots, {len(nodes)} nodes")

    graph, t_graph = timed("build_graph (incl. cycle check)", lambda: build_graph(services))
    waves, t_start = timed("start_waves", lambda: start_waves(graph))
    _, t_stop = timed("stop_waves", lambda: stop_waves(graph))
    timed("select_for_up(last service)", lambda: select_for_up(graph, [services[-1].name]))
    timed("select_for_stop(first service)", lambda: select_for_stop(graph, [services[0].name]))
    slot_list, t_slots = timed("slots", lambda: slots(graph))
    spread: Placement
    spread, t_spread = timed("place spread", lambda: place(slot_list, nodes, "spread"))
    timed("place binpack", lambda: place(slot_list, nodes, "binpack"))
    _, t_naive = timed("naive spread (yardstick)", lambda: naive_spread(slot_list, nodes))

    per_node = sorted(len(spread.slots_on(n.name)) for n in nodes)
    print(f"  waves: {len(waves)}; spread slots per node: min {per_node[0]}, "
          f"max {per_node[-1]}")
    total = t_graph + t_start + t_stop + t_slots + t_spread
    print(f"graph+waves+slots+spread: {total * 1000:.1f} ms (goal < 1000 ms: "
          f"{'met' if total < 1 else 'NOT met'}); placement vs naive scan: "
          f"{t_naive / t_spread:.1f}x faster")


if __name__ == "__main__":
    main()
