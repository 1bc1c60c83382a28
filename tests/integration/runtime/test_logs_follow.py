"""`logs(follow=True)` from the start of a fast writer: every line, in order, once."""

from __future__ import annotations

import pytest
import trio

pytestmark = pytest.mark.root

LINES = 2000


async def test_a_follower_sees_every_line_of_a_fast_writer_exactly_once(rt, make_spec):
    cid = "logs-fast"
    await rt.create(make_spec(cid, "sh", "-c", f"seq 1 {LINES}"))
    seen: list[str] = []

    async def follow() -> None:
        async for rec in rt.logs(cid, follow=True):
            seen.append(rec.line)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(follow)
        await trio.sleep(0)  # the follower opens the (still empty) log first
        await rt.start(cid)
        with trio.fail_after(20):
            await rt.wait(cid)
    assert seen == [str(i) for i in range(1, LINES + 1)]


async def test_followers_started_while_it_writes_miss_nothing(rt, make_spec):
    # Each follower starts at a different point of the output: the part it reads
    # before following and the part it follows must join without a gap or overlap.
    cid = "logs-fast-join"
    await rt.create(make_spec(cid, "sh", "-c",
                              f"for i in $(seq 1 {LINES}); do echo $i; done"))
    results: list[list[str]] = []

    async def follow() -> None:
        lines = [rec.line async for rec in rt.logs(cid, follow=True)]
        results.append(lines)

    async with trio.open_nursery() as nursery:
        await rt.start(cid)
        for _ in range(8):
            nursery.start_soon(follow)
            await trio.sleep(0.01)
        with trio.fail_after(20):
            await rt.wait(cid)
    assert len(results) == 8
    for lines in results:
        assert lines == [str(i) for i in range(1, LINES + 1)]
