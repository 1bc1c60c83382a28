"""`logs -f` across a restart: delete with keep_logs, create the same id, follow on."""

from __future__ import annotations

import pytest
import trio

from stackd.errors import NotFoundError
from stackd.runtime import runtime as runtime_module

pytestmark = pytest.mark.root


def counting(word: str, n: int) -> tuple[str, ...]:
    return ("sh", "-c", f"for i in $(seq 1 {n}); do echo {word}-$i; sleep 0.05; done")


async def test_a_follower_sees_both_runs_of_a_restarted_container(rt, make_spec):
    cid = "logs-restart"
    lines: list[str] = []
    followed = trio.Event()

    async def follow() -> None:
        async for rec in rt.logs(cid, follow=True, across_restarts=True):
            lines.append(rec.line)
        followed.set()

    await rt.create(make_spec(cid, *counting("first", 3)))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(follow)
        await rt.start(cid)
        await rt.wait(cid)
        await rt.delete(cid, keep_logs=True)
        with pytest.raises(NotFoundError):
            await rt.inspect(cid)  # the container is gone; its log is not
        await trio.sleep(0.3)  # the follower looks while there is no container
        await rt.create(make_spec(cid, *counting("second", 3)))
        await rt.start(cid)
        await rt.wait(cid)
        want = [f"first-{i}" for i in (1, 2, 3)] + [f"second-{i}" for i in (1, 2, 3)]
        with trio.fail_after(5):
            while lines != want:
                assert lines == want[:len(lines)], lines
                await trio.sleep(0.05)
        # One log holds both runs, for a reader that comes later too.
        assert [r.line async for r in rt.logs(cid)] == want

        # A real delete takes the log with it; the follower ends on its own.
        await rt.delete(cid)
        assert not rt.log_path(cid).exists()
        with trio.fail_after(runtime_module.GONE_AFTER + 3):
            await followed.wait()
    assert lines == want


async def test_a_log_made_afresh_under_the_same_id_is_followed_from_its_start(
        rt, make_spec):
    cid = "logs-fresh"
    lines: list[str] = []
    await rt.create(make_spec(cid, *counting("old", 4)))
    async with trio.open_nursery() as nursery:
        async def follow() -> None:
            async for rec in rt.logs(cid, follow=True, across_restarts=True):
                lines.append(rec.line)

        nursery.start_soon(follow)
        await rt.start(cid)
        await rt.wait(cid)
        with trio.fail_after(5):
            while len(lines) < 4:
                await trio.sleep(0.05)
        await rt.delete(cid)  # logs not kept: the next create starts a new file
        await rt.create(make_spec(cid, *counting("new", 2)))
        await rt.start(cid)
        await rt.wait(cid)
        with trio.fail_after(5):
            while len(lines) < 6:
                await trio.sleep(0.05)
        assert lines == ["old-1", "old-2", "old-3", "old-4", "new-1", "new-2"]
        nursery.cancel_scope.cancel()  # the follower runs until cancelled
    await rt.delete(cid)


async def test_without_across_restarts_follow_ends_at_exit(rt, make_spec):
    cid = "logs-once"
    await rt.create(make_spec(cid, *counting("only", 2)))
    await rt.start(cid)
    with trio.fail_after(5):
        lines = [r.line async for r in rt.logs(cid, follow=True)]
    assert lines == ["only-1", "only-2"]
    await rt.delete(cid)
