"""An apply killed at any instant is finished or undone by the next one.

The fake host counts side effects; `crash_during_up(at=k)` kills the "daemon" right
after the k-th one, before it can mark its intent done. Whatever k, the next
reconcile (by a fresh supervisor, as after a daemon restart) converges to exactly
the desired containers: no duplicate, no orphan, nothing pending.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from simstacks import Host, sim_host, stack, svc

from stackd.reconciler.desired import DesiredState
from stackd.reconciler.diff import PlanOptions

V1 = stack("demo", svc("db", volumes=("data",)), svc("api", depends=["db"]),
           svc("web", scale=2, env={"LOG_LEVEL": "info"}), svc("old"))
V2 = stack("demo", svc("db", volumes=("data",)), svc("api", depends=["db"]),
           svc("web", scale=1, env={"LOG_LEVEL": "debug"}), svc("new", scale=2))


async def converged(host: Host, desired: DesiredState, options: PlanOptions) -> None:
    await host.restart_supervisor()
    result = await host.up(desired, options)
    assert result.ok, str(result)
    assert (await host.plan(desired, options)).empty
    assert host.runtime.running() == sorted(c.name for c in desired.containers)
    assert sorted(host.runtime.containers) == sorted(c.id for c in desired.containers)
    assert sorted(host.network.connected) == sorted(c.id for c in desired.containers)
    assert host.state.pending("demo") == []


async def count_ops(tmp_path: Path, before: DesiredState | None, desired: DesiredState) -> int:
    async with sim_host(tmp_path / "count") as host:
        if before is not None:
            await host.up(before)
        host.faults.ops = 0
        await host.up(desired, PlanOptions(remove_orphans=True))
        return host.faults.ops


@pytest.mark.parametrize("before", [None, V1], ids=["first-up", "change"])
async def test_crash_after_any_side_effect_then_converge(
        tmp_path: Path, before: DesiredState | None) -> None:
    options = PlanOptions(remove_orphans=True)
    total = await count_ops(tmp_path, before, V2)
    assert total >= 8  # the test means something only if there are many crash points
    for k in range(1, total + 1):
        async with sim_host(tmp_path / str(k)) as host:
            if before is not None:
                await host.up(before)
            assert await host.crash_during_up(V2, at=k, options=options), k
            await converged(host, V2, options)


@pytest.mark.parametrize("at", [1, 2], ids=["netns-made", "container-created"])
async def test_an_interrupted_create_of_a_service_since_dropped_is_undone(
        tmp_path: Path, at: int) -> None:
    v1 = stack("demo", svc("web"))
    v2 = stack("demo", svc("web"), svc("extra"))
    async with sim_host(tmp_path) as host:
        await host.up(v1)
        assert await host.crash_during_up(v2, at=at)
        assert [p.line for p in host.state.pending("demo")] == ["extra-1: create — new service"]
        await host.restart_supervisor()
        # The user thinks better of it: back to v1, without --remove-orphans.
        result = await host.up(v1)
        assert result.plan.lines() == ["extra-1: remove — undoing an interrupted create"]
        assert host.runtime.names() == ["demo-web-1"]
        assert sorted(host.network.connected) == [c.id for c in v1.containers]
        assert host.state.pending("demo") == []
