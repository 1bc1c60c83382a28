"""Fixtures for exec tests: one running busybox container per test, on the test's own
root (leak-checked)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.busybox import busybox_available, make_busybox_rootfs
from support.hostpackages import require

from stackd.roots import Roots
from stackd.runtime import ContainerState, Runtime
from stackd.runtime.containerspec import ContainerSpec, ProcessSpec, Rlimit


@pytest.fixture(scope="session")
def exec_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require(busybox_available(), "busybox-static")
    base = tmp_path_factory.mktemp("exec-layers")
    os.chmod(base, 0o755)
    return make_busybox_rootfs(base / "busybox")


@pytest.fixture
async def rt(roots: Roots, no_leaks: Roots) -> AsyncIterator[Runtime]:
    runtime = Runtime(roots)
    yield runtime
    for state in await runtime.list():
        await runtime.delete(state.id, force=True)


@pytest.fixture
async def running(rt: Runtime, exec_layer: Path) -> ContainerState:
    """A container that marks its root, then sleeps: user app, env FOO=bar, cwd /tmp,
    open files 512 (hard 1024)."""
    spec = ContainerSpec(
        id="exec-target", name="exec-target", layers=(str(exec_layer),), hostname="inside",
        process=ProcessSpec(args=("sh", "-c", "echo here > /tmp/marker; exec sleep 300"),
                            env=("FOO=bar", "SHARED=container"), cwd="/tmp", user="app",
                            rlimits=(Rlimit(type="nofile", soft=512, hard=1024),)))
    await rt.create(spec)
    await rt.start(spec.id)
    state = await rt.inspect(spec.id)
    assert state.status == "running"
    return state
