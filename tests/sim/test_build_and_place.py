"""`up` on a stack with `build:` sections, and a stack refused because it cannot be placed."""

from __future__ import annotations

from pathlib import Path

import pytest
from simfakes import FakeImages
from simstacks import sim_host

from stackd.errors import NotFoundError
from stackd.images.models import Image, ImageConfig
from stackd.reconciler.ports import Adapters
from stackd.reconciler.reconcile import ReconcileOptions, preview, reconcile
from stackd.scheduler import Node, UnschedulableError
from stackd.spec import load_text

BUSYBOX = Image(id="sha256:" + "1" * 64, digest="sha256:" + "a" * 64,
                references=("busybox:latest",),
                config=ImageConfig(env=("PATH=/bin",), cmd=("httpd", "-f")),
                layer_dirs=("/layers/busybox",))


class LocalStore(FakeImages):
    """Holds only what was built (or put in `digests`); never pulls."""

    async def ensure(self, ref: str, pull_policy: str = "missing", **kw: object) -> object:
        self.calls.append((ref, pull_policy))
        if ref not in self.digests:
            raise NotFoundError(f"image '{ref}' is not in the store")
        return self.image.model_copy(update={"digest": self.digests[ref]})


BUILT = """
services:
  app:
    build:
      context: ./app
      dockerfile: App.Dockerfile
      args: {VERSION: "2", FROM_ENV: null, UNSET: null}
      target: final
      labels: {team: web}
      network: none
      extra_hosts: ["gitlab.corp=10.0.0.5"]
      shm_size: 128m
      ulimits: {nofile: {soft: 4096, hard: 8192}}
      additional_contexts: {shared: ./shared, base: "docker-image://busybox:1"}
  tagged:
    image: registry.local/tagged:1
    build: ./tagged
"""


def load(text: str, tmp_path: Path, **kw: object) -> object:
    return load_text(text, project_name="demo", environ={}, project_directory=tmp_path,
                     **kw)  # type: ignore[arg-type]


async def test_up_builds_missing_images_named_as_compose_does(tmp_path: Path) -> None:
    async with sim_host(tmp_path) as host:
        images = LocalStore(BUSYBOX)
        ports = Adapters(host.runtime, images, host.network, host.volumes, host.state)
        stack = load(BUILT, tmp_path)
        options = ReconcileOptions(environ={"FROM_ENV": "yes"})

        planned = await preview(stack, ports, options)  # type: ignore[arg-type]
        assert planned.warnings == (
            "image demo-app is not in the store: up would build it",
            "image registry.local/tagged:1 is not in the store: up would build it")
        assert images.builds == []  # preview builds nothing

        result = await reconcile(stack, ports, options, host.supervisor)  # type: ignore[arg-type]
        assert result.ok, str(result)
        assert sorted(images.builds, key=lambda b: str(b["tags"])) == [
            {"context": str(tmp_path / "app"), "dockerfile": "App.Dockerfile",
             "tags": ["demo-app"], "build_args": {"VERSION": "2", "FROM_ENV": "yes"},
             "target": "final", "labels": {"team": "web"}, "pull": False, "no_cache": False,
             "dockerfile_text": None, "secrets": {}, "network_mode": "none",
             "extra_hosts": ("gitlab.corp=10.0.0.5",), "shm_size": 128 * 1024 ** 2,
             "ulimits": (("nofile", 4096, 8192),),
             "contexts": {"shared": str(tmp_path / "shared"),
                          "base": "docker-image://busybox:1"}, "progress": None},
            {"context": str(tmp_path / "tagged"), "dockerfile": "Dockerfile",
             "tags": ["registry.local/tagged:1"], "build_args": {}, "target": None,
             "labels": {}, "pull": False, "no_cache": False, "dockerfile_text": None,
             "secrets": {}, "network_mode": None, "extra_hosts": (), "shm_size": None,
             "ulimits": (), "contexts": {}, "progress": None},
        ]
        assert sorted(host.runtime.running()) == ["demo-app-1", "demo-tagged-1"]
        # Nothing was pulled: every lookup asked the store only.
        assert {policy for _, policy in images.calls} == {"never"}

        # Built once: the next up finds the images and does nothing.
        again = await reconcile(stack, ports, options, host.supervisor)  # type: ignore[arg-type]
        assert again.plan.empty and len(images.builds) == 2


async def test_up_build_rebuilds_and_recreates_what_changed(tmp_path: Path) -> None:
    async with sim_host(tmp_path) as host:
        images = LocalStore(BUSYBOX)
        ports = Adapters(host.runtime, images, host.network, host.volumes, host.state)
        stack = load(BUILT, tmp_path)
        assert (await reconcile(stack, ports, ReconcileOptions(),  # type: ignore[arg-type]
                                host.supervisor)).ok
        forced = ReconcileOptions(build=True)
        planned = await preview(stack, ports, forced)  # type: ignore[arg-type]
        assert planned.warnings == (
            "image demo-app: up would build it again (--build)",
            "image registry.local/tagged:1: up would build it again (--build)")
        assert len(images.builds) == 2

        result = await reconcile(stack, ports, forced, host.supervisor)  # type: ignore[arg-type]
        assert result.ok, str(result)
        assert len(images.builds) == 4
        # The fake's builds yield new digests, so both containers are recreated.
        assert result.plan.lines() == ["app-1: recreate — image changed",
                                       "tagged-1: recreate — image changed"]


OVERCOMMITTED = """
services:
  small:
    image: busybox
  big:
    image: busybox
    deploy:
      replicas: 3
      resources: {reservations: {cpus: "1.5", memory: 1G}}
"""


async def test_a_stack_that_cannot_fit_is_refused_before_anything_happens(
        tmp_path: Path) -> None:
    async with sim_host(tmp_path) as host:
        images = FakeImages(BUSYBOX)
        ports = Adapters(host.runtime, images, host.network, host.volumes, host.state)
        stack = load(OVERCOMMITTED, tmp_path)
        node = Node("host", cpus=4.0, memory=8 << 30, pids=4096)
        options = ReconcileOptions(nodes=(node,))

        with pytest.raises(UnschedulableError) as refused:
            await preview(stack, ports, options)  # type: ignore[arg-type]
        with pytest.raises(UnschedulableError) as refused:
            await reconcile(stack, ports, options, host.supervisor)  # type: ignore[arg-type]
        message = str(refused.value)
        assert "big" in message and "1.5" in message, message
        assert host.runtime.log == [] and host.runtime.containers == {}
        assert (host.network.existing, host.volumes.existing, images.calls) == ({}, {}, [])

        # Scaled down to what fits, the same stack goes up.
        fits = ReconcileOptions(nodes=(node,), scale={"big": 2})
        result = await reconcile(stack, ports, fits, host.supervisor)  # type: ignore[arg-type]
        assert result.ok, str(result)
        assert sorted(host.runtime.running()) == ["demo-big-1", "demo-big-2", "demo-small-1"]
