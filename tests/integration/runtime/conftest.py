"""Fixtures for the runtime's integration tests: a busybox lower layer shared by all
tests (read-only to containers), a Runtime on the test's own state root, and helpers
that build specs and run a container to its end."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support.busybox import busybox_available, make_busybox_rootfs
from support.hostpackages import require

from stackd.roots import Roots
from stackd.runtime import Runtime
from stackd.runtime.containerspec import ContainerSpec, ProcessSpec


@pytest.fixture(scope="session")
def busybox_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require(busybox_available(), "busybox-static")
    layer = make_busybox_rootfs(tmp_path_factory.mktemp("layers") / "busybox")
    # Make the layer world-traversable: containers run as other users too.
    os.chmod(layer.parent, 0o755)
    return layer


@pytest.fixture
async def rt(roots: Roots, no_leaks: Roots) -> AsyncIterator[Runtime]:
    runtime = Runtime(roots)
    yield runtime
    # Clean up whatever a failing test left behind, before no_leaks looks.
    for state in await runtime.list():
        await runtime.delete(state.id, force=True)


@pytest.fixture
def make_spec(busybox_layer: Path):  # type: ignore[no-untyped-def]
    def make(cid: str, *args: str, **fields: Any) -> ContainerSpec:
        process = {k: fields.pop(k) for k in list(fields) if k in ProcessSpec.model_fields}
        fields.setdefault("hostname", cid)
        return ContainerSpec(id=cid, name=cid, layers=(str(busybox_layer),),
                             process=ProcessSpec(args=args, **process), **fields)
    return make
