"""Property: one writer per stack. With container exits, health flips, stop/start
and applies interleaved at random, every change to a stack's containers happens
inside that stack's reconcile, never two reconciles of one stack run at once, and no
two changes to one container overlap. Afterwards the stack converges.

The old supervisor restarted and killed containers from its own tasks, outside the
stack's reconcile; this property fails on it at the first restart.
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio
import trio.testing
from hypothesis import HealthCheck as HypothesisHealthCheck
from hypothesis import given, settings
from hypothesis import strategies as st
from simfakes import Behaviour
from simstacks import Host, sim_host, stack, svc

from stackd.reconciler.asks import Ask
from stackd.reconciler.desired import DesiredState
from stackd.reconciler.health import HealthCheck
from stackd.reconciler.restart import parse_restart
from stackd.runtime.containerspec import ContainerSpec

CHECK = HealthCheck(args=("check",), interval=1.0, timeout=1.0, retries=1, start_period=0.0,
                    start_interval=1.0)
MUTATING = ("create", "respawn", "start", "stop", "kill", "delete")


def demo(env: str) -> DesiredState:
    always = parse_restart("always")
    return stack("demo",
                 svc("db", health=CHECK, restart=always, env={"V": env}),
                 svc("api", scale=2, restart=parse_restart("on-failure"),
                     depends={"db": "service_healthy"}),
                 svc("web", restart=always, depends=["api"]))


def guard(host: Host, violations: list[str]) -> None:
    """Record every mutating runtime call made while its stack has no reconcile
    running, or while another change to the same container is under way."""
    busy: set[str] = set()
    for name in MUTATING:
        original = getattr(host.runtime, name)

        def wrapped(original: Callable[..., Awaitable[Any]] = original,
                    name: str = name) -> Callable[..., Awaitable[Any]]:
            async def call(target: Any, *args: Any, **kw: Any) -> Any:
                cid = target.id if isinstance(target, ContainerSpec) else str(target)
                project = cid.split("-", 1)[0]
                if host.writers.get(project, 0) != 1:
                    violations.append(f"{name} {cid} outside the stack's reconcile")
                if cid in busy:
                    violations.append(f"{name} {cid} while another change to it ran")
                busy.add(cid)
                try:
                    return await original(target, *args, **kw)
                finally:
                    busy.discard(cid)
            return call
        setattr(host.runtime, name, wrapped())


step = st.one_of(
    st.tuples(st.just("sleep"), st.sampled_from([0.05, 0.5, 2.0, 7.0])),
    st.tuples(st.just("kill"), st.sampled_from(["db", "api", "web"])),
    st.tuples(st.just("flip"), st.sampled_from(["db"]), st.booleans()),
    st.tuples(st.just("apply"), st.sampled_from(["1", "2"])),
    st.tuples(st.just("stop"), st.sampled_from(["db", "api", "web"])),
    st.tuples(st.just("start"), st.sampled_from(["db", "api", "web"])),
)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HypothesisHealthCheck.too_slow])
@given(st.lists(step, min_size=1, max_size=12))
def test_one_writer_per_stack(steps: list[tuple[Any, ...]]) -> None:
    async def run() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            async with sim_host(Path(tmp)) as host:
                violations: list[str] = []
                guard(host, violations)
                await host.up(demo("1"))
                async with trio.open_nursery() as requests:
                    for s in steps:
                        if s[0] == "sleep":
                            await trio.sleep(s[1])
                        elif s[0] == "kill":
                            ids = [cid for cid, c in host.runtime.containers.items()
                                   if f"-{s[1]}-" in cid and c.status == "running"]
                            for cid in ids[:1]:
                                host.runtime.kill_from_outside(cid)
                        elif s[0] == "flip":
                            ok = s[2]
                            host.runtime.behaviours[s[1]] = Behaviour(healthy=lambda t, ok=ok: ok)
                        elif s[0] == "apply":
                            requests.start_soon(host.up, demo(s[1]))
                        else:
                            requests.start_soon(
                                lambda s=s: host.up(host.desired["demo"],
                                                    ask=Ask(s[0], (s[1],))))
                        await trio.sleep(0)
                assert violations == []
                assert host.most_writers == 1
                # the property of a level-triggered loop: it settles
                host.runtime.behaviours["db"] = Behaviour()
                await host.up(demo("3"), ask=Ask("up"))
                await trio.sleep(120)
                again = await host.up(demo("3"))
                assert again.plan.empty, str(again.plan)
                assert violations == []
                # and the guard does see a change made outside the reconcile
                await host.runtime.kill(next(iter(host.runtime.containers)), "SIGKILL")
                assert violations and "outside" in violations[-1]

    trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))
