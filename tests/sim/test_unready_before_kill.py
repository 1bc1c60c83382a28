"""A replica stackd kills (unhealthy) leaves DNS and its port's backends before the
kill, not after: else new connections balanced to it in between are refused.

Regression: the watcher reported `unhealthy` (which enqueues the stack) before it
took the replica out of the backends, and the reconcile's kill did not wait for
that; with nft taking tens of ms under load, the kill came first — one refused
connection now and then in the rolling-update tests and the 20-replica bench."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing
from simfakes import Behaviour
from simstacks import sim_host, stack, svc

from stackd.reconciler.health import HealthCheck
from stackd.reconciler.restart import parse_restart


async def test_an_unhealthy_replica_is_out_of_the_backends_before_it_is_killed(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    check = HealthCheck(args=("check",), interval=1.0, timeout=1.0, retries=1)
    async with sim_host(tmp_path) as host:
        host.network.ready_delay = 0.05
        host.runtime.behaviours["web"] = Behaviour(healthy=lambda t: t < 3)
        await host.up(stack("demo", svc("web", scale=2, health=check,
                                        restart=parse_restart("always"))))
        served_at_kill: list[tuple[str, bool]] = []
        kill = host.runtime.kill

        async def watched_kill(container_id: str, signal: str = "SIGKILL") -> None:
            served_at_kill.append((container_id, host.network.ready.get(container_id,
                                                                         False)))
            await kill(container_id, signal)

        host.runtime.kill = watched_kill  # type: ignore[method-assign]
        await trio.sleep(5)
        assert len(served_at_kill) == 2, served_at_kill  # both turned unhealthy, killed
        assert [served for _, served in served_at_kill] == [False, False], served_at_kill
