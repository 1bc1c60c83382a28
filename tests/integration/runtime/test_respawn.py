"""A restart (respawn: an exited container created again, same id) never makes the
container disappear: `inspect` and `list` show it exited until the new process is
there, then created. CI once saw `stackd container inspect keeper` answer "no
container" in the middle of a `--restart always` restart, the gap between a delete
and a create."""

from __future__ import annotations

import pytest
import trio

from stackd.errors import ConflictError, NotFoundError

pytestmark = pytest.mark.root


async def test_a_respawned_container_is_never_missing(rt, make_spec):
    cid = "respawn-seen"
    await rt.create(make_spec(cid, "sh", "-c", "echo first; exit 3"))
    await rt.start(cid)
    assert (await rt.wait(cid)).code == 3

    seen: list[str] = []
    listed: list[bool] = []
    stop = trio.Event()

    async def look() -> None:
        while not stop.is_set():
            try:
                seen.append((await rt.inspect(cid)).status)
            except NotFoundError:
                seen.append("missing")
            listed.append(any(s.id == cid for s in await rt.list()))
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(look)
        nursery.start_soon(look)
        for _ in range(5):  # each respawn sets up a rootfs: a window worth looking into
            state = await rt.respawn(make_spec(cid, "sh", "-c", "echo again; exit 3"))
            assert state.status == "created" and state.exit is None
            await rt.start(cid)
            assert (await rt.wait(cid)).code == 3
        stop.set()

    assert "missing" not in seen and all(listed), seen
    assert {"exited", "created"} <= set(seen), seen
    # The log went on across every run, as a restart's does.
    assert [r.line async for r in rt.logs(cid)] == ["first"] + ["again"] * 5
    await rt.delete(cid)


async def test_respawn_refuses_a_running_or_unknown_container(rt, make_spec):
    cid = "respawn-refused"
    await rt.create(make_spec(cid, "sleep", "30"))
    await rt.start(cid)
    with pytest.raises(ConflictError, match="running"):
        await rt.respawn(make_spec(cid, "sleep", "30"))
    assert (await rt.inspect(cid)).status == "running"  # untouched
    await rt.delete(cid, force=True)
    with pytest.raises(NotFoundError):
        await rt.respawn(make_spec(cid, "sleep", "30"))


async def test_a_respawned_container_keeps_when_it_was_created(rt, make_spec):
    """Docker's Created survives a restart (ps's CREATED); only the start is new."""
    cid = "respawn-created"
    await rt.create(make_spec(cid, "sh", "-c", "exit 0"))
    await rt.start(cid)
    await rt.wait(cid)
    first = await rt.inspect(cid)
    await trio.sleep(1.1)  # a second apart: the record's times are to the second or finer
    await rt.respawn(make_spec(cid, "sh", "-c", "exit 0"))
    await rt.start(cid)
    await rt.wait(cid)
    again = await rt.inspect(cid)
    assert first.created_at is not None and again.created_at == first.created_at
    assert again.started_at is not None and first.started_at is not None
    assert again.started_at > first.started_at
    await rt.delete(cid)
