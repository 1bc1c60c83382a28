"""The daemon's `up` of an unchanged stack reuses its last load (daemon/loadcache.py):
the same request, nothing read or looked for changed, its configs' files the same.
Any change a fresh load would see gives a fresh load."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackd.daemon.adapters import HostWorld
from stackd.daemon.loadcache import LoadCache
from stackd.daemon.models import StackSource
from stackd.errors import SpecError
from stackd.roots import Roots
from stackd.spec.probes import Probes
from stackd.state.db import StateDB

STACK = """services:
  web:
    image: demo
    configs: [app]
configs:
  app:
    file: ./app.conf
"""


@pytest.fixture
def world(tmp_path: Path):  # type: ignore[no-untyped-def]
    roots = Roots(state=tmp_path / "state", run=tmp_path / "run").ensure()
    db = StateDB.open(tmp_path / "state.db")
    yield HostWorld(roots, db)
    db.close()


async def test_an_unchanged_stack_is_not_loaded_again(world: HostWorld, tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "compose.yaml").write_text(STACK)
    (project / "app.conf").write_text("one")
    source = StackSource(cwd=str(project), environ={"A": "1"})

    first = await world.load(source)
    assert await world.load(source) is first
    assert await world.load(StackSource(cwd=str(project), environ={"A": "2"})) is not first

    (project / "app.conf").write_text("two")  # a config's bytes, which no probe covers
    second = await world.load(source)
    assert second is not first and list(second.files.values()) == [b"two"]
    assert await world.load(source) is second

    (project / "compose.override.yaml").write_text("services:\n  web:\n    image: other\n")
    third = await world.load(source)
    assert third.stack.services["web"].image == "other"

    (project / "compose.yaml").write_text("services: [")  # a broken file: an error, not kept
    with pytest.raises(SpecError):
        await world.load(source)
    (project / "compose.yaml").write_text(STACK)
    assert (await world.load(source)).stack.services["web"].image == "other"


def test_the_cache_keeps_one_load_per_place_and_the_latest_places_only() -> None:
    cache: LoadCache[str] = LoadCache(size=2)
    cache.put("here", "env 1", Probes(), "first")
    cache.put("here", "env 2", Probes(), "second")  # replaces, does not add
    assert cache.get("here", "env 1", lambda _: True) is None
    assert cache.get("here", "env 2", lambda _: True) == "second"
    assert cache.get("here", "env 2", lambda _: False) is None  # what probes miss
    cache.put("there", "r", Probes(), "there")
    cache.put("elsewhere", "r", Probes(), "elsewhere")
    assert cache.get("here", "env 2", lambda _: True) is None  # the oldest place went
    assert cache.get("there", "r", lambda _: True) == "there"
