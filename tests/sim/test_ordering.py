"""Start order, parallelism within a wave, and depends_on gating, on a fake host."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing
from simfakes import Behaviour
from simstacks import sim_host, stack, svc

from stackd.reconciler.health import HealthCheck

CHECK = HealthCheck(args=("true",), interval=1.0, timeout=1.0, retries=3, start_period=0.0,
                    start_interval=1.0)


async def test_first_up_creates_networks_then_waves_in_dependency_order(tmp_path: Path) -> None:
    desired = stack("demo", svc("db"), svc("api", depends=["db"]), svc("web", depends=["api"]),
                    svc("cache"))
    async with sim_host(tmp_path) as host:
        result = await host.up(desired)
        assert result.ok, str(result)
        assert str(result.plan) == "\n".join([
            "network demo_default: create — declared in the stack",
            "api-1: create — new service",
            "cache-1: create — new service",
            "db-1: create — new service",
            "web-1: create — new service",
        ])
        starts = host.runtime.ops("start")
        assert starts.index("demo-db-1") < starts.index("demo-api-1") < starts.index("demo-web-1")
        assert set(starts[:2]) == {"demo-cache-1", "demo-db-1"}  # one wave, both first
        assert host.runtime.running() == ["demo-api-1", "demo-cache-1", "demo-db-1",
                                          "demo-web-1"]
        assert (await host.plan(desired)).empty


async def test_service_healthy_gates_the_dependent_until_the_first_passing_probe(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    check = HealthCheck(args=("pg_isready",), interval=2.0, timeout=1.0, retries=3,
                        start_period=10.0, start_interval=0.5)
    desired = stack("demo", svc("db", health=check),
                    svc("api", depends={"db": "service_healthy"}))
    async with sim_host(tmp_path) as host:
        host.runtime.behaviours["db"] = Behaviour(healthy=lambda t: t >= 3.2)
        t0 = trio.current_time()
        result = await host.up(desired)
        assert result.ok, str(result)
        started = {name: t - t0 for t, op, name in host.runtime.log if op == "start"}
        # probes every 0.5 s during the start period: the first passing one is at 3.5 s
        assert started == {"demo-db-1": 0.0, "demo-api-1": 3.5}


async def test_unhealthy_dependency_fails_its_dependents_with_the_cause(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    desired = stack("demo", svc("db", health=CHECK),
                    svc("api", depends={"db": "service_healthy"}),
                    svc("web", depends=["api"]), svc("other"))
    async with sim_host(tmp_path) as host:
        host.runtime.behaviours["db"] = Behaviour(healthy=lambda t: False)
        result = await host.up(desired)
        assert not result.ok
        assert [str(o) for o in result.failures] == [
            "api-1: create — new service [skipped: dependency db failed: demo-db-1 is "
            "unhealthy]",
            "web-1: create — new service [skipped: dependency api failed: dependency db "
            "failed: demo-db-1 is unhealthy]",
        ]
        assert host.runtime.running() == ["demo-db-1", "demo-other-1"]


async def test_completed_successfully_waits_for_the_job_and_a_failed_job_stops_dependents(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    desired = stack("demo", svc("migrate"),
                    svc("api", depends={"migrate": "service_completed_successfully"}))
    async with sim_host(tmp_path) as host:
        host.runtime.behaviours["migrate"] = Behaviour(exit_after=4.0, exit_code=0)
        t0 = trio.current_time()
        assert (await host.up(desired)).ok
        api_start = [t for t, op, n in host.runtime.log if op == "start" and n == "demo-api-1"]
        assert api_start == [t0 + 4.0]
        # a finished job is not run again by the next plan
        assert (await host.plan(desired)).empty

    async with sim_host(tmp_path / "b") as host:
        host.runtime.behaviours["migrate"] = Behaviour(exit_after=1.0, exit_code=3)
        result = await host.up(desired)
        assert [str(o) for o in result.failures] == [
            "api-1: create — new service [skipped: dependency migrate failed: "
            "demo-migrate-1 exited with code 3]"]


async def test_up_runs_a_finished_job_again_and_a_changed_dependent_waits_for_it(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    """Compose's `up` starts every container that is not running: `migrate` runs on
    each `up`, and a dependent made in that `up` waits for this run's success."""
    from stackd.reconciler.asks import Ask

    first = stack("demo", svc("migrate"),
                  svc("api", depends={"migrate": "service_completed_successfully"}))
    changed = stack("demo", svc("migrate"),
                    svc("api", env={"V": "2"},
                        depends={"migrate": "service_completed_successfully"}))
    async with sim_host(tmp_path) as host:
        host.runtime.behaviours["migrate"] = Behaviour(exit_after=4.0, exit_code=0)
        assert (await host.up(first, ask=Ask("up"))).ok
        await trio.sleep(5)
        result = await host.up(first, ask=Ask("up"))
        assert result.plan.lines() == ["migrate-1: start — exited (code 0)"]
        await trio.sleep(5)
        assert host.runtime.ops("start").count("demo-migrate-1") == 2
        assert host.runtime.running() == ["demo-api-1"]  # not restarted
        t0 = trio.current_time()
        result = await host.up(changed, ask=Ask("up"))
        assert result.plan.lines() == ["api-1: recreate — environment changed: V",
                                       "migrate-1: start — exited (code 0)"]
        api_start = [t for t, op, n in host.runtime.log if op == "start" and n == "demo-api-1"]
        assert api_start[-1] == t0 + 4.0


async def test_a_failed_create_is_reported_and_stops_only_its_dependents(
        tmp_path: Path) -> None:
    desired = stack("demo", svc("db"), svc("api", depends=["db"]), svc("web"))
    async with sim_host(tmp_path) as host:
        host.runtime.behaviours["db"] = Behaviour(start_error="cannot mount /data: no space")
        result = await host.up(desired)
        assert [str(o) for o in result.failures] == [
            "db-1: create — new service [failed: cannot mount /data: no space]",
            "api-1: create — new service [skipped: dependency db failed: cannot mount "
            "/data: no space]",
        ]
        assert host.runtime.running() == ["demo-web-1"]


async def test_optional_dependency_failure_does_not_stop_the_dependent(tmp_path: Path) -> None:
    from stackd.reconciler.desired import DependsOn
    desired = stack("demo", svc("db"),
                    svc("api", depends=(DependsOn("db", "service_started", required=False),)))
    async with sim_host(tmp_path) as host:
        host.runtime.behaviours["db"] = Behaviour(create_error="image has no layers")
        result = await host.up(desired)
        assert [o.line for o in result.failures] == ["db-1: create — new service"]
        assert host.runtime.running() == ["demo-api-1"]
        # the failed create left no network namespace behind
        assert [c for c in host.network.connected if "-db-" in c] == []


async def test_a_gate_timeout_fails_a_dependency_that_never_turns_healthy(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    from stackd.reconciler.apply import apply
    from stackd.reconciler.restart import parse_restart

    desired = stack("demo", svc("db", health=CHECK, restart=parse_restart("always")),
                    svc("api", depends={"db": "service_healthy"}))
    async with sim_host(tmp_path) as host:
        host.runtime.behaviours["db"] = Behaviour(exit_after=0.5, exit_code=1)  # crash loop
        t0 = trio.current_time()
        result = await apply(await host.plan(desired), desired, host.ports, host.supervisor,
                             gate_timeout=60)
        assert trio.current_time() - t0 == 60
        assert [str(o) for o in result.failures] == [
            "api-1: create — new service [skipped: dependency db failed: not healthy after 60s]"]
