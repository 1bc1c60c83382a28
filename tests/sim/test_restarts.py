"""Restart policies, the backoff's exact timing, unhealthy restarts and DNS readiness."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing
from simfakes import Behaviour
from simstacks import sim_host, stack, svc

from stackd.reconciler.health import HealthCheck
from stackd.reconciler.restart import RestartPolicy, parse_restart


def starts(host: object, name: str, t0: float) -> list[float]:
    return [round(t - t0, 6) for t, op, n in host.runtime.log  # type: ignore[attr-defined]
            if op == "start" and n == name]


async def test_crashing_container_restarts_with_doubling_backoff_up_to_the_cap(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    desired = stack("demo", svc("flaky", restart=parse_restart("always")))
    async with sim_host(tmp_path) as host:
        host.runtime.behaviours["flaky"] = Behaviour(exit_after=0.0, exit_code=1)
        t0 = trio.current_time()
        await host.up(desired)
        await trio.sleep(200)
        # the first restart at once, then delays 0.1 0.2 0.4 0.8 1.6 3.2 6.4 12.8 25.6,
        # then the 30 s cap: a crash loop backs off although its first restart is free
        runs = starts(host, "demo-flaky-1", t0)
        assert runs[:12] == pytest.approx(
            [0, 0, 0.1, 0.3, 0.7, 1.5, 3.1, 6.3, 12.7, 25.5, 51.1, 81.1])
        assert len(runs) == 15  # … 81.1, then every 30 s: 111.1, 141.1, 171.1 (in 200 s)


async def test_a_long_run_resets_the_backoff(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    desired = stack("demo", svc("worker", restart=parse_restart("on-failure")))
    async with sim_host(tmp_path) as host:
        host.runtime.behaviours["worker"] = Behaviour(exit_after=10.0, exit_code=2)
        t0 = trio.current_time()
        await host.up(desired)
        await trio.sleep(35)
        assert starts(host, "demo-worker-1", t0) == pytest.approx([0, 10, 20, 30])


async def test_on_failure_with_a_limit_gives_up_and_on_failure_ignores_success(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    desired = stack("demo", svc("job", restart=parse_restart("on-failure:3")),
                    svc("ok", restart=parse_restart("on-failure")))
    async with sim_host(tmp_path) as host:
        host.runtime.behaviours["job"] = Behaviour(exit_after=1.0, exit_code=1)
        host.runtime.behaviours["ok"] = Behaviour(exit_after=1.0, exit_code=0)
        t0 = trio.current_time()
        await host.up(desired)
        await trio.sleep(60)
        assert starts(host, "demo-job-1", t0) == pytest.approx([0, 1, 2.1, 3.3])
        assert starts(host, "demo-ok-1", t0) == [0]
        finished = [w.desired.name for w in host.supervisor.watches() if w.finished]
        assert finished == ["demo-job-1", "demo-ok-1"]


async def test_no_policy_never_restarts_and_deploy_window_forgets_old_restarts(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    windowed = RestartPolicy("on-failure", max_attempts=2, delay=5.0, window=12.0)
    desired = stack("demo", svc("once"), svc("windowed", restart=windowed))
    async with sim_host(tmp_path) as host:
        host.runtime.behaviours["once"] = Behaviour(exit_after=1.0, exit_code=1)
        host.runtime.behaviours["windowed"] = Behaviour(exit_after=4.0, exit_code=1)
        t0 = trio.current_time()
        await host.up(desired)
        await trio.sleep(40)
        assert starts(host, "demo-once-1", t0) == [0]
        # runs of 4 s, a fixed 5 s delay: exits at 4, 13, 22, 31. At 22 the restart at
        # 9 is more than 12 s old and no longer counts, so max_attempts (2) never bites.
        assert starts(host, "demo-windowed-1", t0) == pytest.approx([0, 9, 18, 27, 36])


async def test_container_killed_from_outside_is_brought_back(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    desired = stack("demo", svc("web", restart=parse_restart("unless-stopped")))
    async with sim_host(tmp_path) as host:
        await host.up(desired)
        t0 = trio.current_time()
        (cid,) = host.runtime.containers
        await trio.sleep(30)
        host.runtime.kill_from_outside(cid)
        await trio.sleep(1)
        assert host.runtime.running() == ["demo-web-1"]
        assert host.event_lines("die", "restart")[-2:] == [
            f"{t0 + 30:g} demo-web-1 die: exit code 137",
            f"{t0 + 30:g} demo-web-1 restart: restart 1 after 0s",
        ]


async def test_unhealthy_container_is_restarted_unless_opted_out(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    check = HealthCheck(args=("check",), interval=1.0, timeout=1.0, retries=3)
    always = parse_restart("always")
    desired = stack("demo", svc("web", health=check, restart=always),
                    svc("keep", health=check, restart=always, restart_on_unhealthy=False))
    async with sim_host(tmp_path) as host:
        sick = Behaviour(healthy=lambda t: t < 4.5)  # probes at 1..4 pass, 5, 6, 7 fail
        host.runtime.behaviours["web"] = host.runtime.behaviours["keep"] = sick
        t0 = trio.current_time()
        await host.up(desired)
        await trio.sleep(7.5)
        assert starts(host, "demo-web-1", t0) == pytest.approx([0, 7])
        assert starts(host, "demo-keep-1", t0) == [0]
        assert host.supervisor.get(
            next(c for c in host.runtime.containers if "keep" in c)).health == "unhealthy"


async def test_dns_serves_a_replica_only_while_running_and_healthy(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    check = HealthCheck(args=("check",), interval=1.0, timeout=1.0, retries=1,
                        start_period=0.0, start_interval=1.0)
    desired = stack("demo", svc("api", health=check, restart_on_unhealthy=False),
                    svc("plain"))
    async with sim_host(tmp_path) as host:
        host.runtime.behaviours["api"] = Behaviour(healthy=lambda t: 2.5 < t < 5.5)
        host.runtime.behaviours["plain"] = Behaviour(exit_after=8.0, exit_code=0)
        t0 = trio.current_time()
        await host.up(desired)
        await trio.sleep(10)
        def served(name: str) -> list[tuple[float, bool]]:
            return [(round(t - t0, 6), ready) for t, cid, ready in host.network.readiness_log
                    if cid.startswith(name)]
        # first passing probe at 3 s, first failing one at 6 s (retries: 1)
        assert served("demo-api-1") == [(0, False), (3, True), (6, False)]
        assert served("demo-plain-1") == [(0, True), (8, False)]  # until it exits


async def test_a_new_daemon_probes_a_running_containers_health_at_once(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    """A daemon restart made every healthy container "starting" for an interval (30 s
    by default): `ps` said so, and `up --wait` and service_healthy gates waited."""
    check = HealthCheck(args=("check",), interval=30.0, timeout=1.0, retries=3)
    desired = stack("demo", svc("api", health=check, restart=parse_restart("always")))
    async with sim_host(tmp_path) as host:
        await host.up(desired)
        await trio.sleep(31)
        (api,) = host.runtime.containers
        assert host.supervisor.get(api).health == "healthy"  # type: ignore[union-attr]
        await host.restart_supervisor()  # the daemon restarts
        await host.up(desired)  # its first pass finds the container running
        await trio.sleep(0.5)
        assert host.supervisor.get(api).health == "healthy"  # type: ignore[union-attr]
        host.runtime.kill_from_outside(api)  # a run it starts itself waits an interval
        await trio.sleep(2)
        assert host.runtime.running() == ["demo-api-1"]
        assert host.supervisor.get(api).health == "starting"  # type: ignore[union-attr]


async def test_containers_removed_by_apply_are_not_restarted(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    always = parse_restart("always")
    async with sim_host(tmp_path) as host:
        await host.up(stack("demo", svc("web", scale=2, restart=always)))
        result = await host.up(stack("demo", svc("web", scale=1, restart=always)))
        assert result.plan.lines() == ["web-2: remove — scale 2 → 1"]
        await trio.sleep(60)
        assert host.runtime.running() == ["demo-web-1"]
        assert sorted(host.runtime.ops("start")) == ["demo-web-1", "demo-web-2"]


async def test_a_new_restart_policy_reaches_running_containers_without_recreating(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    async with sim_host(tmp_path) as host:
        host.runtime.behaviours["web"] = Behaviour(exit_after=100.0, exit_code=1)
        await host.up(stack("demo", svc("web")))
        ids = set(host.runtime.containers)
        result = await host.up(stack("demo", svc("web", restart=parse_restart("always"))))
        assert result.plan.empty
        t0 = trio.current_time()
        await trio.sleep(100.5)
        assert starts(host, "demo-web-1", t0) == pytest.approx([0, 100])
        assert set(host.runtime.containers) == ids  # same container, same id


async def test_a_stopped_container_stays_stopped_through_resyncs_and_daemon_restarts(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    from stackd.reconciler.asks import Ask

    desired = stack("demo", svc("web", restart=parse_restart("always")), svc("db"))
    async with sim_host(tmp_path) as host:
        await host.up(desired)
        stop = await host.up(desired, ask=Ask("stop", ("web",)))
        assert stop.plan.lines() == ["web-1: stop — held: stopped by the user"]
        assert stop.ok
        await host.up(desired)  # the daemon's periodic resync
        await trio.sleep(60)
        assert host.runtime.running() == ["demo-db-1"]
        await host.restart_supervisor()  # the daemon restarts
        await host.up(desired)
        await trio.sleep(60)
        assert host.runtime.running() == ["demo-db-1"]
        # an explicit `up` clears the hold and starts it again, and its restart policy
        # applies again
        result = await host.up(desired, ask=Ask("up"))
        assert result.plan.lines() == ["web-1: start — exited (code 143)"]
        (web,) = [c for c in host.runtime.containers if "web" in c]
        host.runtime.kill_from_outside(web)
        await trio.sleep(1)
        assert host.runtime.running() == ["demo-db-1", "demo-web-1"]


async def test_up_starts_what_a_user_stopped_though_it_exited_0_on_the_stop(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    """Regression: a server that ends cleanly on SIGTERM (exit 0) looked like a one-shot
    job that had finished, so `stop` then `up` left it stopped (Compose starts it)."""
    from stackd.reconciler.asks import Ask

    desired = stack("demo", svc("web"), svc("job"))
    async with sim_host(tmp_path) as host:
        host.runtime.behaviours["web"] = Behaviour(stop_code=0)
        host.runtime.behaviours["job"] = Behaviour(exit_after=1.0)
        await host.up(desired)
        await trio.sleep(2)  # the job has done its work
        assert host.runtime.running() == ["demo-web-1"]
        await host.up(desired, ask=Ask("stop", ("web",)))
        assert host.runtime.running() == []
        result = await host.up(desired, ask=Ask("up"))
        # The job that finished by itself runs again too, as Compose's `up` does.
        assert result.plan.lines() == ["job-1: start — exited (code 0)",
                                       "web-1: start — exited (code 0)"]
        assert host.runtime.running() == ["demo-job-1", "demo-web-1"]
        await trio.sleep(2)
        assert host.runtime.running() == ["demo-web-1"]
        # The reconcile loop's own passes leave the finished job alone.
        assert (await host.plan(desired)).empty


async def test_kill_stops_a_container_its_restart_policy_would_bring_back(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    """Docker's kill marks a container stopped by the user; stackd's left it to the
    restart policy, so `kill` of a `restart: always` service was undone at once."""
    from stackd.reconciler.asks import Ask

    desired = stack("demo", svc("web", restart=parse_restart("always")),
                    svc("proxy", restart=parse_restart("always")))
    async with sim_host(tmp_path) as host:
        await host.up(desired)
        await host.up(desired, ask=Ask("kill", ("web",)))
        # A reload's signal is no stop: what follows is the restart policy's.
        await host.up(desired, ask=Ask("kill", ("proxy",), signal="SIGHUP"))
        await trio.sleep(60)
        await host.up(desired)  # the daemon's periodic resync
        assert host.runtime.running() == ["demo-proxy-1"]
        result = await host.up(desired, ask=Ask("up"))
        assert result.plan.lines() == ["web-1: start — exited (code 137)"]
        assert host.runtime.running() == ["demo-proxy-1", "demo-web-1"]


async def test_start_after_stop_is_supervised_again(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    """Regression: a `stop` then `start` left the container running unwatched: no
    health checks, no restart when it died."""
    from stackd.reconciler.asks import Ask

    check = HealthCheck(args=("check",), interval=1.0, timeout=1.0, retries=1)
    desired = stack("demo", svc("web", health=check, restart=parse_restart("always")))
    async with sim_host(tmp_path) as host:
        await host.up(desired)
        await host.up(desired, ask=Ask("stop"))
        assert host.runtime.running() == []
        start = await host.up(desired, ask=Ask("start"))
        assert start.plan.lines() == ["web-1: start — exited (code 143)"]
        await trio.sleep(3)
        (web,) = host.runtime.containers
        assert host.supervisor.get(web).health == "healthy"  # type: ignore[union-attr]
        t0 = trio.current_time()
        host.runtime.kill_from_outside(web)
        await trio.sleep(1)
        assert host.runtime.running() == ["demo-web-1"]
        assert [t for t in starts(host, "demo-web-1", t0) if t >= 0] == pytest.approx([0])


async def test_a_restart_keeps_the_log_a_recreate_and_down_remove_it(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    from stackd.reconciler.apply import apply
    from stackd.reconciler.diff import plan_down

    desired = stack("demo", svc("flaky", restart=parse_restart("on-failure:2")))
    async with sim_host(tmp_path) as host:
        host.runtime.behaviours["flaky"] = Behaviour(exit_after=1.0, exit_code=1)
        await host.up(desired)
        (cid,) = host.runtime.containers
        await trio.sleep(10)
        assert len(starts(host, "demo-flaky-1", 0)) == 3  # two restarts, same id
        assert host.runtime.log_files == {cid: 3}  # one log: `logs -f` follows on

        changed = stack("demo", svc("flaky", env={"A": "1"},
                                    restart=parse_restart("on-failure:2")))
        assert (await host.up(changed)).ok
        (new,) = host.runtime.containers
        assert new != cid and host.runtime.log_files == {new: 1}  # a new container, log

        actual = await host.actual("demo")
        result = await apply(plan_down(actual), None, host.ports, host.supervisor)
        assert result.ok and host.runtime.log_files == {}


async def test_a_restart_joins_its_network_again_and_a_disrupted_one_connects_afresh(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    """issue #20: a heal no longer detaches and attaches again (netns, veth, address,
    DNS) what outlived the process; what was removed from outside is made again."""
    desired = stack("demo", svc("web", restart=parse_restart("always")))
    async with sim_host(tmp_path) as host:
        await host.up(desired)
        (cid,) = host.runtime.containers
        assert host.network.connects == [cid]
        host.runtime.kill_from_outside(cid)
        await trio.sleep(1)
        assert host.runtime.running() == ["demo-web-1"]
        assert host.network.connects == [cid]  # the same namespace, joined again
        assert host.runtime.containers[cid].spec.namespaces.net == f"/run/netns/{cid}"

        w = host.supervisor.get(cid)
        assert w is not None and host.supervisor.mark_disrupted(w, "veth vx was gone")
        host.controller.enqueue("demo")  # type: ignore[union-attr]
        await trio.sleep(1)
        assert host.runtime.running() == ["demo-web-1"]
        assert host.network.connects == [cid, cid]

        await host.network.disconnect(cid)  # its attachment lost while it runs
        host.runtime.kill_from_outside(cid)
        await trio.sleep(1)
        assert host.runtime.running() == ["demo-web-1"]
        assert host.network.connects == [cid, cid, cid]


@pytest.mark.parametrize("netns_lost", [False, True], ids=["netns kept", "netns lost"])
async def test_a_restart_is_one_runtime_step_so_the_container_is_never_missing(
        tmp_path: Path, autojump_clock: trio.testing.MockClock, netns_lost: bool) -> None:
    """Between a kill and its restart, `ps` and `inspect` find the container (exited),
    never nothing: a restart is one respawn, not a delete then a create — also when
    its network namespace went too and the restart makes that afresh (CI saw `stackd
    container inspect` answer "no container" in that gap)."""
    desired = stack("demo", svc("web", restart=parse_restart("always")))
    async with sim_host(tmp_path) as host:
        await host.up(desired)
        (cid,) = host.runtime.containers
        if netns_lost:
            host.network.connected.pop(cid)
        seen = len(host.runtime.log)
        host.runtime.kill_from_outside(cid)
        await trio.sleep(1)
        assert host.runtime.running() == ["demo-web-1"]
        assert [op for _, op, _ in host.runtime.log[seen:]] == ["exit 137", "respawn", "start"]
        assert cid in host.network.connected


async def test_a_container_starts_only_once_dns_answers_its_names(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    """`connect` no longer waits for the resolver (it catches up while the container is
    made); every start must, or the container's first lookups fail. The fake runtime
    refuses a start the fake network has not answered for (every sim test checks it);
    here a container made by `create` and started by `start` later."""
    from stackd.reconciler.asks import Ask

    desired = stack("demo", svc("web"), svc("db"))
    async with sim_host(tmp_path) as host:
        await host.up(desired, ask=Ask("create"))
        assert host.runtime.running() == []
        assert host.network.unresolved  # connected, not answered: nothing waited yet
        result = await host.up(desired, ask=Ask("start"))
        assert result.ok, result.outcomes
        assert host.runtime.running() == ["demo-db-1", "demo-web-1"]
        assert not host.network.unresolved
