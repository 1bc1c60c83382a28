"""Fixtures of the image tier: a real registry process and busybox images."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.busybox import busybox_available, make_busybox_tar
from support.hostpackages import require
from support.registry import RunningRegistry, registry_available, start_registry

from stackd.images import ImageStore
from stackd.roots import Roots


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    require(registry_available(), "docker-registry")
    reg = start_registry(tmp_path / "registry")
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture
def token_registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    require(registry_available(), "docker-registry")
    reg = start_registry(tmp_path / "token-registry", token_auth=True)
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture
def basic_registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    require(registry_available(), "docker-registry")
    reg = start_registry(tmp_path / "basic-registry", basic_auth=True)
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require(busybox_available(), "busybox-static")
    work = tmp_path_factory.mktemp("busybox")
    return make_busybox_tar(work / "busybox.tar", work)


@pytest.fixture
def built_base(roots: Roots, no_leaks: Roots, busybox_tar: Path) -> ImageStore:
    """A store holding busybox:test, to build FROM; nothing of the root left after."""
    store = ImageStore(roots)
    store.import_rootfs(busybox_tar, "busybox:test")
    return store


@pytest.fixture
def store(roots: Roots) -> ImageStore:
    return ImageStore(roots)


@pytest.fixture
def empty_store(tmp_path: Path) -> ImageStore:
    """A second, empty store (another machine, as far as the image store can tell)."""
    return ImageStore(Roots(state=tmp_path / "other" / "state",
                            run=tmp_path / "other" / "run").ensure())

