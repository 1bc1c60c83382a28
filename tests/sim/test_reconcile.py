"""The front door on a real stack file: reconcile(), preview(), down(), on the fake host."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing
from simfakes import Behaviour, FakeImages
from simstacks import sim_host

from stackd.images.models import Image, ImageConfig
from stackd.reconciler.diff import PlanOptions
from stackd.reconciler.ports import Adapters
from stackd.reconciler.reconcile import ReconcileOptions, down, preview, reconcile
from stackd.spec import load_text

BUSYBOX = Image(id="sha256:" + "1" * 64, digest="sha256:" + "a" * 64,
                references=("busybox:latest",),
                config=ImageConfig(env=("PATH=/bin",), cmd=("httpd", "-f")),
                layer_dirs=("/layers/busybox",))

STACK = """
services:
  db:
    image: busybox
    healthcheck: {test: ["CMD", "true"], interval: 1s, start_period: 5s, start_interval: 1s}
    volumes: [data:/data]
  migrate:
    image: busybox
    command: [echo, migrated]
    depends_on: {db: {condition: service_healthy}}
  api:
    image: busybox
    environment: {LOG_LEVEL: info}
    depends_on:
      db: {condition: service_healthy}
      migrate: {condition: service_completed_successfully}
  web:
    image: busybox
    ports: ["8080:80"]
    depends_on: [api]
volumes:
  data: {}
"""


def load(text: str, tmp_path: Path) -> object:
    return load_text(text, project_name="demo", environ={}, project_directory=tmp_path)


async def test_up_plan_change_down(tmp_path: Path, autojump_clock: trio.testing.MockClock
                                   ) -> None:
    async with sim_host(tmp_path) as host:
        images = FakeImages(BUSYBOX)
        ports = Adapters(host.runtime, images, host.network, host.volumes, host.state)
        host.runtime.behaviours["migrate"] = Behaviour(exit_after=2.0, exit_code=0)
        stack = load(STACK, tmp_path)
        options = ReconcileOptions()

        before = await preview(stack, ports, options)  # type: ignore[arg-type]
        assert before.lines() == [
            "network demo_default: create — declared in the stack",
            "volume demo_data: create — declared in the stack",
            "api-1: create — new service",
            "db-1: create — new service",
            "migrate-1: create — new service",
            "web-1: create — new service",
        ]
        assert host.runtime.containers == {}  # preview changed nothing
        t0 = trio.current_time()
        result = await reconcile(stack, ports, options, host.supervisor)  # type: ignore[arg-type]
        assert result.ok, str(result)
        starts = {n: t - t0 for t, op, n in host.runtime.log if op == "start"}
        # db healthy at its first probe (1 s); migrate runs 2 s; then api, then web
        assert starts == {"demo-db-1": 0, "demo-migrate-1": 1, "demo-api-1": 3, "demo-web-1": 3}
        assert host.network.published[
            next(c for c in host.runtime.containers if "web" in c)][0].host_port == 8080
        assert (await preview(stack, ports, options)).empty  # type: ignore[arg-type]

        changed = load(STACK.replace("LOG_LEVEL: info", "LOG_LEVEL: debug"), tmp_path)
        assert (await preview(changed, ports, options)).lines() == [  # type: ignore[arg-type]
            "api-1: recreate — environment changed: LOG_LEVEL"]
        images.digests["busybox"] = "sha256:" + "b" * 64  # the tag was re-pulled
        assert (await preview(changed, ports, options)).lines() == [  # type: ignore[arg-type]
            "api-1: recreate — image changed; environment changed: LOG_LEVEL",
            "db-1: recreate — image changed",
            "migrate-1: recreate — image changed",
            "web-1: recreate — image changed",
        ]
        result = await reconcile(changed, ports, options, host.supervisor)  # type: ignore[arg-type]
        assert result.ok, str(result)

        gone = await down("demo", ports, host.supervisor, remove_volumes=True,
                          waves=[["db"], ["migrate"], ["api"], ["web"]])
        assert gone.ok, str(gone)
        assert [line.split(":")[0] for line in gone.plan.lines()] == [
            "web-1", "api-1", "migrate-1", "db-1", "network demo_default", "volume demo_data"]
        assert (host.runtime.containers, host.network.existing, host.volumes.existing) == (
            {}, {}, {})
        assert images.calls[0] == ("busybox", "never")  # preview never pulls


async def test_preview_as_up_shows_the_job_and_the_stopped_server_up_starts(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    """`up --dry-run` says what `up` does: start the finished job again and the server a
    user stopped. `stackd plan` (what the stack lacks) shows neither; nothing changes."""
    async with sim_host(tmp_path) as host:
        ports = Adapters(host.runtime, FakeImages(BUSYBOX), host.network, host.volumes,
                         host.state)
        host.runtime.behaviours["migrate"] = Behaviour(exit_after=2.0, exit_code=0)
        stack = load(STACK, tmp_path)
        options = ReconcileOptions()
        result = await reconcile(stack, ports, options, host.supervisor)  # type: ignore[arg-type]
        assert result.ok, str(result)
        web = next(c for c in host.runtime.containers if "-web-" in c)
        host.state.hold("demo", web)
        await host.runtime.stop(web, grace=0)

        assert (await preview(stack, ports, options)).empty  # type: ignore[arg-type]
        as_up = await preview(stack, ports, options, as_up=True)  # type: ignore[arg-type]
        assert as_up.lines() == ["migrate-1: start — exited (code 0)",
                                 "web-1: start — exited (code 143)"]
        assert host.state.held("demo") == [web]  # a preview clears no hold
        named = ReconcileOptions(plan=PlanOptions(services=("web",), no_deps=True))
        assert (await preview(stack, ports, named, as_up=True)).lines() == [  # type: ignore[arg-type]
            "web-1: start — exited (code 143)"]


async def test_up_of_one_service_with_options(tmp_path: Path) -> None:
    async with sim_host(tmp_path) as host:
        ports = Adapters(host.runtime, FakeImages(BUSYBOX), host.network, host.volumes, host.state)
        stack = load("services: {a: {image: busybox}, b: {image: busybox}}", tmp_path)
        options = ReconcileOptions(plan=PlanOptions(services=("b",)), scale={"b": 2})
        result = await reconcile(stack, ports, options, host.supervisor)  # type: ignore[arg-type]
        assert result.plan.lines()[1:] == ["b-1: create — new service",
                                           "b-2: create — new service"]


class StoreWithout(FakeImages):
    """An image store that has nothing, and refuses to pull when told never to."""

    async def ensure(self, ref: str, pull_policy: str = "missing", **kw: object) -> object:
        from stackd.errors import NotFoundError

        self.calls.append((ref, pull_policy))
        if pull_policy == "never":
            raise NotFoundError(f"image '{ref}' is not in the store")
        return self.image


async def test_preview_on_a_fresh_machine_plans_without_pulling(tmp_path: Path) -> None:
    async with sim_host(tmp_path) as host:
        images = StoreWithout(BUSYBOX)
        ports = Adapters(host.runtime, images, host.network, host.volumes, host.state)
        stack = load("services: {web: {image: busybox, command: [httpd]}}", tmp_path)
        p = await preview(stack, ports, ReconcileOptions())  # type: ignore[arg-type]
        assert str(p) == "\n".join([
            "network demo_default: create — declared in the stack",
            "web-1: create — new service",
            "warning: image busybox is not in the store: up will pull it",
        ])
        assert images.calls == [("busybox", "never")]
