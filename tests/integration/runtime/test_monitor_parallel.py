"""The monitor sets containers up in parallel: one slow create does not hold up others.

A create is answered once the container's first process has built its root
filesystem; the monitor serves every other request meanwhile (it used to wait,
so an `up` of 50 services set them up one at a time). Here one container's setup
blocks as it opens the network namespace its spec names — a FIFO the test made,
opened by nobody for writing — until the test opens it: while it blocks, another
container is created, started and runs. (The slow one then fails: a FIFO is no
namespace.) A FIFO for the image's /etc/passwd held it before; an image's passwd
that is no file is refused at once now.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from stackd.errors import StackdError
from stackd.runtime.containerspec import Namespaces

pytestmark = pytest.mark.root


async def test_a_blocked_setup_does_not_hold_up_other_containers(rt, make_spec, tmp_path: Path):
    fifo = tmp_path / "netns-that-blocks"
    os.mkfifo(fifo)
    slow = make_spec("par-slow", "sleep", "60", namespaces=Namespaces(net=str(fifo)))
    ended: list[BaseException | None] = []

    async def create_slow() -> None:
        try:
            await rt.create(slow)
            ended.append(None)
        except StackdError as e:
            ended.append(e)

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(create_slow)
            await trio.sleep(0.3)  # the slow one is forked and blocked on the FIFO
            assert not ended
            with trio.fail_after(5):  # the old monitor answered nobody for 30 s here
                await rt.create(make_spec("par-fast", "sleep", "60"))
                await rt.start("par-fast")
            assert (await rt.inspect("par-fast")).status == "running"
            assert not ended, "the slow create ended while its namespace blocked it"
            fd = os.open(fifo, os.O_WRONLY)  # lets its open return
            os.close(fd)
    assert ended and ended[0] is not None  # a FIFO is no namespace: refused, typed
    assert [s.id for s in await rt.list()] == ["par-fast"]
