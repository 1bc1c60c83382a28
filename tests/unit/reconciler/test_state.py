"""The reconciler's durable parts: the intent log and the volume store (real SQLite, real dirs)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from stackd.errors import UsageError
from stackd.roots import Roots
from stackd.state.db import StateDB
from stackd.state.intents import IntentLog
from stackd.state.volumes import VolumeStore


def test_intents_stay_pending_until_done_and_survive_reopening(roots: Roots) -> None:
    path = roots.state / "stackd.db"
    log = IntentLog(StateDB.open(path))
    a = log.begin("demo", "create", "web-1", "demo-web-1-abc", "web-1: create — new service")
    b = log.begin("demo", "remove", "old-1", "demo-old-1-def", "old-1: remove — orphan")
    log.begin("other", "create", "x-1", "other-x-1", "x-1: create — new service")
    log.done(a)
    log.db.close()  # the daemon dies

    again = IntentLog(StateDB.open(path))
    assert [(p.id, p.verb, p.resource, p.container_id) for p in again.pending("demo")] == [
        (b, "remove", "old-1", "demo-old-1-def")]
    again.done(b)
    assert again.pending("demo") == []
    again.db.close()


async def test_volumes_are_directories_owned_by_their_project(roots: Roots) -> None:
    store = VolumeStore(StateDB.open(roots.state / "stackd.db"), roots.state)
    path = await store.ensure_volume("demo", "demo_data")
    assert path == str(roots.state / "volumes" / "demo_data" / "data")
    assert Path(path).is_dir()
    Path(path, "file").write_text("kept")
    assert await store.ensure_volume("demo", "demo_data") == path  # idempotent, data kept
    assert Path(path, "file").read_text() == "kept"
    assert await store.volumes("demo") == ["demo_data"]
    assert await store.volumes("other") == []
    await store.remove_volume("demo_data")
    assert not (roots.state / "volumes" / "demo_data").exists()
    assert await store.volumes("demo") == []
    with pytest.raises(UsageError, match=r"volume name '\.\./x' is not valid"):
        store.path("../x")
    store.db.close()


async def test_anonymous_volumes_are_known_as_such_also_when_set_apart(roots: Roots) -> None:
    """What `volume prune` (without -a) may remove: a container's own volumes, and
    those set apart when their container went; never a named one."""
    store = VolumeStore(StateDB.open(roots.state / "stackd.db"), roots.state)
    await store.ensure_volume("demo", "demo_data")
    anon = await store.ensure_volume("demo", "demo_web-1_0123abcd", anonymous=True)
    Path(anon, "f").write_text("old")
    assert store.anonymous() == {"demo_web-1_0123abcd"}
    apart = await store.detach("demo_web-1_0123abcd")
    assert apart is not None and apart.startswith("demo_web-1_0123abcd.")
    assert Path(store.path(apart), "f").read_text() == "old"  # kept, under its new name
    assert not Path(anon).exists()
    assert store.anonymous() == {apart}
    assert sorted(await store.volumes("demo")) == sorted(["demo_data", apart])
    assert await store.detach("demo_web-1_0123abcd") is None  # nothing there now
    await store.remove_volume(apart)
    assert store.anonymous() == set() and await store.volumes("demo") == ["demo_data"]
    store.db.close()


@pytest.mark.root  # chown to another user
async def test_config_files_are_written_once_with_owner_and_mode(roots: Roots) -> None:
    store = VolumeStore(StateDB.open(roots.state / "stackd.db"), roots.state)
    path = store.file_path("ab" * 32)
    await store.write_file(path, b"s3cret", 1000, 1001, 0o400)
    st = os.stat(path)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1001, 0o400)
    assert Path(path).read_bytes() == b"s3cret"
    await store.write_file(path, b"s3cret", 1000, 1001, 0o400)  # no error, left as it is
    assert os.stat(path).st_ino == st.st_ino
    store.db.close()


def test_holds_are_per_container_and_durable(roots: Roots) -> None:
    path = roots.state / "stackd.db"
    log = IntentLog(StateDB.open(path))
    log.hold("demo", "demo-web-1-abc")
    log.hold("demo", "demo-web-1-abc")  # twice is once
    log.hold("other", "other-x-1-def")
    log.db.close()
    again = IntentLog(StateDB.open(path))
    assert again.held("demo") == ["demo-web-1-abc"]
    again.unhold("demo-web-1-abc")
    assert again.held("demo") == []
    assert again.held("other") == ["other-x-1-def"]
    again.db.close()
