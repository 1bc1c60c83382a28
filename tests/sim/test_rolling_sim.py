"""Rolling updates on the fake host: the order of runtime operations batch by batch,
and a failing batch stopping the update (monitor holds each batch)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import trio
from simfakes import Behaviour
from simstacks import sim_host, stack, svc

from stackd.reconciler.desired import DesiredState
from stackd.reconciler.diff import PlanOptions
from stackd.reconciler.reconcile import converge
from stackd.reconciler.restart import parse_restart
from stackd.reconciler.rolling import Rollout
from stackd.spec.model import UpdateConfig


def rolled(desired: DesiredState, **update: object) -> DesiredState:
    config = UpdateConfig.model_validate(update)
    return dataclasses.replace(desired, services={
        name: dataclasses.replace(s, update=config) for name, s in desired.services.items()})


def ops(host: object, since: int) -> list[str]:
    log = host.runtime.log[since:]  # type: ignore[attr-defined]
    return [f"{op} {name}" for _, op, name in log if op in ("create", "start", "stop")]


async def test_start_first_makes_each_new_replica_before_the_old_one_goes(
        tmp_path: Path, autojump_clock: object) -> None:
    # On trio's mock clock: the batches' spacing is exact, whatever the machine's load.
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


async def test_other_work_of_the_stack_is_served_between_batches(
        tmp_path: Path, autojump_clock: object) -> None:
    """One batch per reconcile: a crashed container of another service is restarted
    while the update still has batches left, not once the whole update is over."""
    async with sim_host(tmp_path) as host:
        update = {"parallelism": 1, "order": "start-first", "monitor": timedelta(seconds=5)}
        always = parse_restart("always")

        def desired(v: str) -> DesiredState:
            return rolled(stack("demo", svc("web", scale=3, env={"V": v}),
                                svc("db", restart=always)), **update)

        await host.up(desired("1"))
        db = next(c for c in host.runtime.containers if "db" in c)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(host.up, desired("2"))
            await trio.sleep(1)  # batch 1/3 is in its monitor
            t0 = trio.current_time()
            host.runtime.kill_from_outside(db)
            await trio.sleep(5)
            # batch 1 ends at about 5 s, then db is restarted, before batch 2/3 and 3/3
            restarted = [t for t, op, name in host.runtime.log if op == "start"
                         and name == "demo-db-1" and t >= t0]
            starts = [t for t, op, name in host.runtime.log if op == "start"
                      and name == "demo-web-3" and t >= t0]
        assert restarted and not starts, (restarted, starts)
        assert restarted[0] - t0 < 6, restarted
        assert sorted(host.runtime.running()) == [
            "demo-db-1", "demo-web-1", "demo-web-2", "demo-web-3"]


async def test_a_paused_update_stays_paused_until_a_new_revision(
        tmp_path: Path, autojump_clock: object) -> None:
    async with sim_host(tmp_path) as host:
        update = {"parallelism": 1, "order": "start-first", "failure_action": "pause",
                  "monitor": timedelta(seconds=1)}
        await host.up(rolled(stack("demo", svc("web", scale=3, env={"V": "1"})), **update))
        old = sorted(host.runtime.containers)
        host.runtime.behaviours["web"] = Behaviour(exit_after=0.5, exit_code=1)
        two = rolled(stack("demo", svc("web", scale=3, env={"V": "2"})), **update)
        result = await host.up(two)
        assert not result.ok
        paused = host.rollouts["demo"]["web"].paused
        assert paused == "update of web paused: batch 1/3 (web-1) failed: " \
            "demo-web-1 exited with code 1"
        mark = len(host.runtime.log)
        for _ in range(3):  # resyncs, events: no batch runs again
            host.controller.enqueue("demo")  # type: ignore[union-attr]
            await trio.sleep(10)
        assert ops(host, mark) == []
        assert sorted(host.runtime.containers) == old
        plan = await host.plan(two)
        assert "web-1: recreate" in plan.lines()[0]
        # the next `up` (a new revision, here with the fault fixed) runs the update again
        host.runtime.behaviours.pop("web")
        result = await host.up(two)
        assert result.ok, result
        assert ops(host, mark) == [
            "create demo-web-1", "start demo-web-1", "stop demo-web-1",
            "create demo-web-2", "start demo-web-2", "stop demo-web-2",
            "create demo-web-3", "start demo-web-3", "stop demo-web-3"]


async def test_continue_goes_on_past_failed_batches_and_tries_them_no_more(
        tmp_path: Path, autojump_clock: object) -> None:
    async with sim_host(tmp_path) as host:
        update = {"parallelism": 1, "order": "start-first", "failure_action": "continue",
                  "monitor": timedelta(seconds=1)}
        await host.up(rolled(stack("demo", svc("web", scale=3, env={"V": "1"})), **update))
        old = sorted(host.runtime.containers)
        host.runtime.behaviours["web"] = Behaviour(exit_after=0.5, exit_code=1)
        mark = len(host.runtime.log)
        await host.up(rolled(stack("demo", svc("web", scale=3, env={"V": "2"})), **update))
        assert host.rollouts["demo"]["web"].failed == (1, 2, 3)
        tried = [line for line in ops(host, mark) if line.startswith("create")]
        assert tried == ["create demo-web-1", "create demo-web-2", "create demo-web-3"]
        host.controller.enqueue("demo")  # type: ignore[union-attr]
        await trio.sleep(10)
        assert [line for line in ops(host, mark) if line.startswith("create")] == tried
        assert sorted(host.runtime.containers) == old  # each failed batch undone


async def test_a_ratio_of_failures_is_tolerated_before_the_failure_action(
        tmp_path: Path, autojump_clock: object) -> None:
    async with sim_host(tmp_path) as host:
        update = {"parallelism": 1, "order": "start-first", "failure_action": "pause",
                  "monitor": timedelta(seconds=1), "max_failure_ratio": 0.4}
        await host.up(rolled(stack("demo", svc("web", scale=3, env={"V": "1"})), **update))
        host.runtime.behaviours["web"] = Behaviour(exit_after=0.5, exit_code=1)
        await host.up(rolled(stack("demo", svc("web", scale=3, env={"V": "2"})), **update))
        rollout = host.rollouts["demo"]["web"]
        # 1/3 failed is within 0.4; the second failure (2/3) pauses it
        assert rollout.failed == (1, 2) and rollout.paused.startswith(
            "update of web paused: batch 2/3 (web-2) failed"), rollout


async def test_a_new_daemon_continues_the_update_where_it_was(tmp_path: Path) -> None:
    """The update's state is the revision's (here: what converge returned), so the
    pass after a daemon restart runs batch 2/3, not batch 1 again."""
    async with sim_host(tmp_path) as host:
        update = {"parallelism": 1, "order": "stop-first", "monitor": timedelta(0)}
        await host.up(rolled(stack("demo", svc("web", scale=3, env={"V": "1"})), **update))
        two = rolled(stack("demo", svc("web", scale=3, env={"V": "2"})), **update)
        first = await converge(two, host.ports, PlanOptions(), host.supervisor)
        assert first.updating and first.rollouts["web"].batches == 1
        await host.restart_supervisor()
        mark = len(host.runtime.log)
        second = await converge(two, host.ports, PlanOptions(), host.supervisor,
                                rollouts=first.rollouts)
        assert [line.split(" (")[1] for line in second.plan.lines()] == [
            "rolling update batch 2/3, stop-first)", "rolling update batch 3/3, stop-first)"]
        assert ops(host, mark) == ["stop demo-web-2", "create demo-web-2", "start demo-web-2"]
        assert second.rollouts["web"].done == (1, 2) and second.updating


async def test_a_batch_cut_short_by_a_daemon_crash_is_gated_by_the_next_daemon(
        tmp_path: Path, autojump_clock: object) -> None:
    """The daemon dies in batch 1's monitor (start-first: old and new web-1 both
    there). The next daemon keeps the new web-1 (the plan removes the old as a
    duplicate) but still holds it to the gate: it fails, and the update pauses there
    instead of going on to web-2 with a broken web-1."""
    async with sim_host(tmp_path) as host:
        update = {"parallelism": 1, "order": "start-first", "failure_action": "pause",
                  "monitor": timedelta(seconds=5)}
        await host.up(rolled(stack("demo", svc("web", scale=3, env={"V": "1"})), **update))
        old1 = next(c for c in host.runtime.containers if c.startswith("demo-web-1"))
        two = rolled(stack("demo", svc("web", scale=3, env={"V": "2"})), **update)
        host.runtime.behaviours["web"] = Behaviour(exit_after=3, exit_code=1)
        kept: dict[str, Rollout] = {}
        with trio.move_on_after(1):  # the daemon dies mid-batch
            await converge(two, host.ports, PlanOptions(), host.supervisor,
                           on_rollout=kept.update)
        assert kept["web"].in_flight == (1,) and kept["web"].batches == 1
        await host.restart_supervisor()
        mark, marked = len(host.runtime.log), len(host.network.readiness_log)
        result = await converge(two, host.ports, PlanOptions(), host.supervisor,
                                rollouts=kept)
        # the old web-1, never watched by this daemon, left the backends before it went
        assert (old1, False) in [(c, r) for _, c, r in host.network.readiness_log[marked:]]
        assert result.rollouts["web"].paused == (
            "update of web paused: batch 1/3 (web-1) failed: demo-web-1 exited with code 1")
        assert "create demo-web-2" not in ops(host, mark)
