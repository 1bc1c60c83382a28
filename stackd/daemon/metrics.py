"""The daemon's Prometheus metrics, on a private registry (one per daemon, so tests don't share)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _ContainerStates(Collector):
    """Containers by state and health, read at scrape time from the daemon's last view."""

    def __init__(self, snapshot: Callable[[], Iterable[tuple[str, str, str]]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterable[GaugeMetricFamily]:
        states = GaugeMetricFamily("stackd_containers", "Containers by project and state",
                                   labels=["project", "state"])
        health = GaugeMetricFamily("stackd_containers_health",
                                   "Containers by project and health status",
                                   labels=["project", "health"])
        by_state: dict[tuple[str, str], int] = {}
        by_health: dict[tuple[str, str], int] = {}
        for project, state, status in self._snapshot():
            by_state[(project, state)] = by_state.get((project, state), 0) + 1
            if status:
                by_health[(project, status)] = by_health.get((project, status), 0) + 1
        for (project, state), n in sorted(by_state.items()):
            states.add_metric([project, state], n)
        for (project, status), n in sorted(by_health.items()):
            health.add_metric([project, status], n)
        yield states
        yield health


class Metrics:
    def __init__(self, containers: Callable[[], Iterable[tuple[str, str, str]]] = list) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.reconcile_seconds = Histogram(
            "stackd_reconcile_duration_seconds", "Time of one reconcile of a stack",
            ["project", "result"], registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.reconciles = Counter("stackd_reconciles", "Reconciles run",
                                  ["project", "result"], registry=r)
        self.restarts = Counter("stackd_container_restarts",
                                "Containers restarted or replaced by the daemon",
                                ["project", "service", "reason"], registry=r)
        self.events = Counter("stackd_events", "Events published", ["type"], registry=r)
        self.queue_depth = Gauge("stackd_workqueue_depth", "Stacks waiting to be reconciled",
                                 registry=r)
        self.requests = Counter("stackd_api_requests", "API requests",
                                ["method", "route", "code"], registry=r)
        self.stacks = Gauge("stackd_stacks", "Stacks the daemon keeps", registry=r)
        r.register(_ContainerStates(containers))

    def render(self) -> bytes:
        return generate_latest(self.registry)
