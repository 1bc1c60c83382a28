"""Rolling updates on the fake host: the order of runtime operations batch by batch,
and a failing batch stopping the update (monitor holds each batch)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

from simfakes import Behaviour
from simstacks import sim_host, stack, svc

from stackd.reconciler.desired import DesiredState
from stackd.spec.model import UpdateConfig


def rolled(desired: DesiredState, **update: object) -> DesiredState:
    config = UpdateConfig.model_validate(update)
    return dataclasses.replace(desired, services={
        name: dataclasses.replace(s, update=config) for name, s in desired.services.items()})


def ops(host: object, since: int) -> list[str]:
    log = host.runtime.log[since:]  # type: ignore[attr-defined]
    return [f"{op} {name}" for _, op, name in log if op in ("create", "start", "stop")]


async def test_start_first_makes_each_new_replica_before_the_old_one_goes(
        tmp_path: Path) -> None:
    async with sim_host(tmp_path) as host:
        update = {"parallelism": 1, "order": "start-first", "monitor": timedelta(seconds=2)}
        await host.up(rolled(stack("demo", svc("web", scale=3, env={"V": "1"})), **update))
        mark = len(host.runtime.log)
        result = await host.up(rolled(stack("demo", svc("web", scale=3, env={"V": "2"})),
                                      **update))
        assert result.ok, result
        assert ops(host, mark) == [
            "create demo-web-1", "start demo-web-1", "stop demo-web-1",
            "create demo-web-2", "start demo-web-2", "stop demo-web-2",
            "create demo-web-3", "start demo-web-3", "stop demo-web-3"]
        starts = [t for t, op, _ in host.runtime.log[mark:] if op == "start"]
        assert [round(b - a, 1) for a, b in pairwise(starts)] == [2.0, 2.0]
        assert [line.split(" — ")[1] for line in result.plan.lines()] == [
            f"environment changed: V (rolling update batch {n}/3, start-first)"
            for n in (1, 2, 3)]


async def test_stop_first_removes_the_old_replica_first(tmp_path: Path) -> None:
    async with sim_host(tmp_path) as host:
        update = {"parallelism": 2, "order": "stop-first", "monitor": timedelta(0)}
        await host.up(rolled(stack("demo", svc("web", scale=3, env={"V": "1"})), **update))
        mark = len(host.runtime.log)
        result = await host.up(rolled(stack("demo", svc("web", scale=3, env={"V": "2"})),
                                      **update))
        assert result.ok, result
        assert ops(host, mark) == [
            "stop demo-web-1", "create demo-web-1", "start demo-web-1",
            "stop demo-web-2", "create demo-web-2", "start demo-web-2",
            "stop demo-web-3", "create demo-web-3", "start demo-web-3"]


async def test_a_failing_batch_pauses_the_update_and_the_old_replicas_serve_on(
        tmp_path: Path) -> None:
    async with sim_host(tmp_path) as host:
        update = {"parallelism": 1, "order": "start-first", "failure_action": "pause"}
        await host.up(rolled(stack("demo", svc("web", scale=3, env={"V": "1"})), **update))
        old = sorted(host.runtime.containers)
        host.runtime.behaviours["web"] = Behaviour(exit_after=0.5, exit_code=1)
        result = await host.up(rolled(stack("demo", svc("web", scale=3, env={"V": "2"})),
                                      **update))
        assert not result.ok
        lines = [str(o) for o in result.failures]
        assert lines[-1] == ("web: rolling update [failed: update of web paused: batch 1/3 "
                             "(web-1) failed: demo-web-1 exited with code 1]")
        assert [o.status for o in result.failures[:2]] == ["skipped", "skipped"]
        assert sorted(host.runtime.containers) == old  # the new web-1 was undone
