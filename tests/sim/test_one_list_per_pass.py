"""A pass reads the runtime's list once (converge's `views`); a list taken before an
exit must not make the pass's adoption take the exited container for a new run."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing
from simstacks import sim_host, stack, svc

from stackd.reconciler.diff import PlanOptions
from stackd.reconciler.reconcile import converge
from stackd.reconciler.restart import parse_restart


async def test_an_exit_after_the_passs_list_is_not_taken_for_a_new_run(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    desired = stack("demo", svc("web", restart=parse_restart("no")))
    async with sim_host(tmp_path) as host:
        await host.up(desired)
        (cid,) = host.runtime.containers
        views = await host.runtime.list()  # says running
        host.runtime.kill_from_outside(cid)
        await trio.testing.wait_all_tasks_blocked()
        w = host.supervisor.get(cid)
        assert w is not None and not w.running  # the supervisor saw the exit
        dies = len(host.event_lines("die"))

        result = await converge(desired, host.ports, PlanOptions(), host.supervisor,
                                views=views)  # type: ignore[arg-type]
        await trio.testing.wait_all_tasks_blocked()

        assert result.ok
        assert not w.running  # not armed again as if it ran
        assert len(host.event_lines("die")) == dies  # so its exit is not reported twice
        assert [v.status for v in await host.runtime.list()] == ["exited"]


async def test_a_pass_at_rest_lists_the_runtime_once(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    desired = stack("demo", svc("web", scale=3))
    async with sim_host(tmp_path) as host:
        await host.up(desired)
        await trio.testing.wait_all_tasks_blocked()
        listed = 0
        real = host.runtime.list

        async def counting() -> list[object]:
            nonlocal listed
            listed += 1
            return await real()  # type: ignore[return-value]

        host.runtime.list = counting  # type: ignore[method-assign,assignment]
        result = await converge(desired, host.ports, PlanOptions(), host.supervisor)
        assert result.ok and not result.plan.actions
        assert listed == 1
