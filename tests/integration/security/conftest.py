"""Fixtures for the hardening tests: a busybox layer with the escape probe on top, a
Runtime on the test's own root (leak-checked), and a spec maker."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support.busybox import busybox_available, make_busybox_rootfs
from support.hostpackages import require, require_command

from stackd.roots import Roots
from stackd.runtime import Runtime
from stackd.runtime.containerspec import ContainerSpec, ProcessSpec

PROBE_SOURCE = Path(__file__).with_name("probe.c")


@pytest.fixture(scope="session")
def probe_layers(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(probe layer, busybox layer): the probe is a static binary at /bin/probe."""
    require(busybox_available(), "busybox-static")
    require_command("gcc", "gcc")  # with libc6-dev's libc.a: the probe is static
    base = tmp_path_factory.mktemp("security-layers")
    os.chmod(base, 0o755)
    busybox = make_busybox_rootfs(base / "busybox")
    probe_layer = base / "probe"
    (probe_layer / "bin").mkdir(parents=True)
    subprocess.run(["gcc", "-static", "-O1", "-Wall", "-Werror", "-o",
                    str(probe_layer / "bin/probe"), str(PROBE_SOURCE)], check=True)
    return str(probe_layer), str(busybox)


@pytest.fixture
async def rt(roots: Roots, no_leaks: Roots) -> AsyncIterator[Runtime]:
    runtime = Runtime(roots)
    yield runtime
    for state in await runtime.list():
        await runtime.delete(state.id, force=True)


@pytest.fixture
def make_spec(probe_layers: tuple[str, str]):  # type: ignore[no-untyped-def]
    def make(cid: str, *args: str, **fields: Any) -> ContainerSpec:
        process = {k: fields.pop(k) for k in list(fields) if k in ProcessSpec.model_fields}
        fields.setdefault("hostname", cid)
        return ContainerSpec(id=cid, name=cid, layers=probe_layers,
                             process=ProcessSpec(args=args, **process), **fields)
    return make
