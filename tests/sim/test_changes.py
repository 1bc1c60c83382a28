"""Changing a running stack: scale, environment, orphans, force/no recreate, down."""

from __future__ import annotations

from pathlib import Path

from simstacks import sim_host, stack, svc

from stackd.reconciler.apply import apply
from stackd.reconciler.diff import PlanOptions, plan_down


async def test_scale_up_and_down_touches_only_the_slots_that_change(tmp_path: Path) -> None:
    async with sim_host(tmp_path) as host:
        await host.up(stack("demo", svc("web"), svc("db")))
        first = set(host.runtime.containers)

        result = await host.up(stack("demo", svc("web", scale=3), svc("db")))
        assert result.plan.lines() == ["web-2: create — scale 1 → 3",
                                       "web-3: create — scale 1 → 3"]
        assert first <= set(host.runtime.containers)  # nothing recreated

        result = await host.up(stack("demo", svc("web", scale=1), svc("db")))
        assert result.plan.lines() == ["web-3: remove — scale 3 → 1",
                                       "web-2: remove — scale 3 → 1"]
        removed = host.runtime.ops("delete")
        assert removed == ["demo-web-3", "demo-web-2"]  # highest index first
        assert set(host.runtime.containers) == first


async def test_an_environment_change_recreates_only_that_service(tmp_path: Path) -> None:
    async with sim_host(tmp_path) as host:
        await host.up(stack("demo", svc("web", scale=2, env={"LOG_LEVEL": "info", "A": "1"}),
                            svc("db", env={"X": "1"})))
        db_before = [c for c in host.runtime.containers if c.startswith("demo-db-")]
        changed = stack("demo", svc("web", scale=2, env={"LOG_LEVEL": "debug", "A": "1"}),
                        svc("db", env={"X": "1"}))
        result = await host.up(changed)
        assert str(result.plan) == "\n".join([
            "web-1: recreate — environment changed: LOG_LEVEL",
            "web-2: recreate — environment changed: LOG_LEVEL",
        ])
        assert result.ok
        assert [c for c in host.runtime.containers if c.startswith("demo-db-")] == db_before
        assert host.runtime.running() == ["demo-db-1", "demo-web-1", "demo-web-2"]
        assert (await host.plan(changed)).empty


async def test_orphans_are_warned_about_and_removed_only_when_asked(tmp_path: Path) -> None:
    async with sim_host(tmp_path) as host:
        await host.up(stack("demo", svc("web"), svc("old")))
        smaller = stack("demo", svc("web"))
        result = await host.up(smaller)
        assert result.plan.empty
        assert result.plan.warnings == (
            "orphan container demo-old-1 (service old is not in the stack); run with "
            "--remove-orphans to remove it",)
        assert host.runtime.running() == ["demo-old-1", "demo-web-1"]

        result = await host.up(smaller, PlanOptions(remove_orphans=True))
        assert result.plan.lines() == ["old-1: remove — orphan: service old is not in the stack"]
        assert host.runtime.running() == ["demo-web-1"]


async def test_force_and_no_recreate(tmp_path: Path) -> None:
    async with sim_host(tmp_path) as host:
        await host.up(stack("demo", svc("web", env={"A": "1"})))
        forced = await host.up(stack("demo", svc("web", env={"A": "1"})),
                               PlanOptions(force_recreate=True))
        assert forced.plan.lines() == ["web-1: recreate — forced (--force-recreate)"]
        kept = await host.up(stack("demo", svc("web", env={"A": "2"})),
                             PlanOptions(no_recreate=True))
        assert kept.plan.empty
        # The same config is the same id: made again by one respawn (a fresh process
        # and upper layer, the log going on), the --no-recreate change not at all.
        assert host.runtime.ops("create") == ["demo-web-1"]
        assert host.runtime.ops("respawn") == ["demo-web-1"]


async def test_up_of_some_services_brings_their_dependencies_only(tmp_path: Path) -> None:
    desired = stack("demo", svc("db"), svc("api", depends=["db"]), svc("web"))
    async with sim_host(tmp_path) as host:
        result = await host.up(desired, PlanOptions(services=("api",)))
        assert result.plan.lines() == ["network demo_default: create — declared in the stack",
                                       "api-1: create — new service",
                                       "db-1: create — new service"]
        result = await host.up(desired, PlanOptions(services=("web",), no_deps=True))
        assert result.plan.lines() == ["web-1: create — new service"]


async def test_down_removes_containers_dependents_first_and_volumes_only_with_v(
        tmp_path: Path) -> None:
    desired = stack("demo", svc("db", volumes=("data",)), svc("api", depends=["db"]))
    async with sim_host(tmp_path) as host:
        await host.up(desired)
        assert host.volumes.existing == {"demo_data": "demo"}
        stop_order = [s for wave in reversed(desired.waves) for s in wave]
        down = plan_down(await host.actual("demo"), stop_order=stop_order)
        assert down.lines() == ["api-1: remove — down", "db-1: remove — down",
                                "network demo_default: remove — down"]
        result = await apply(down, None, host.ports, host.supervisor, waves=desired.waves)
        assert result.ok, str(result)
        assert host.runtime.containers == {}
        assert host.network.existing == {}
        assert host.volumes.existing == {"demo_data": "demo"}  # kept across down

        await host.up(desired)
        down_v = plan_down(await host.actual("demo"), stop_order=stop_order,
                           remove_volumes=True)
        assert down_v.lines()[-1] == "volume demo_data: remove — down -v"
        assert (await apply(down_v, None, host.ports, host.supervisor, waves=desired.waves)).ok
        assert host.volumes.existing == {}
        assert host.runtime.ops("delete")[-2:] == ["demo-api-1", "demo-db-1"]


async def test_depends_on_restart_true_restarts_dependents_of_a_recreated_service(
        tmp_path: Path) -> None:
    from stackd.reconciler.desired import DependsOn

    def demo(db_env: str) -> object:
        return stack("demo", svc("db", env={"V": db_env}),
                     svc("api", depends=(DependsOn("db", restart=True),)),
                     svc("web", depends=(DependsOn("api", restart=True),)),
                     svc("worker", depends=("db",)))

    async with sim_host(tmp_path) as host:
        await host.up(demo("1"))  # type: ignore[arg-type]
        before = dict.fromkeys(host.runtime.containers)
        host.runtime.log.clear()
        result = await host.up(demo("2"))  # type: ignore[arg-type]
        assert result.ok, str(result)
        assert result.plan.lines() == [
            "db-1: recreate — environment changed: V",
            "api-1: restart — db recreated (depends_on restart: true)",
            "web-1: restart — api restarted (depends_on restart: true)",
        ]
        # api and web: same containers, started again after db; worker untouched.
        starts = host.runtime.ops("start")
        assert starts == ["demo-db-1", "demo-api-1", "demo-web-1"]
        kept = {c for c in host.runtime.containers if "db" not in c}
        assert kept <= set(before)
        api = next(c for c in kept if "api" in c)
        assert host.runtime.log_files[api] == 2  # one log across the restart

        # Nothing changed: nothing restarts.
        assert (await host.up(demo("2"))).plan.empty  # type: ignore[arg-type]
