"""A daemon holds its root's monitor: idle, it stays while held and goes once let go."""

from __future__ import annotations

import os
import time

import pytest
import trio

from stackd.runtime.client import MonitorClient
from stackd.runtime.monitor import IDLE_EXIT_SECONDS

pytestmark = pytest.mark.root


def monitor_pid(roots) -> int | None:
    try:
        pid = int((roots.run / "monitor.pid").read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


async def test_a_held_monitor_outlives_its_idle_time_and_exits_when_let_go(roots, no_leaks):
    client = MonitorClient(roots)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.hold)
        with trio.fail_after(10):
            while not await client.answers():
                await trio.sleep(0.05)
        pid = monitor_pid(roots)
        assert pid is not None
        await trio.sleep(IDLE_EXIT_SECONDS * 3)  # idle all along: it would have gone
        assert monitor_pid(roots) == pid
        assert await client.answers()
        nursery.cancel_scope.cancel()  # the daemon goes: its connection closes
    deadline = time.monotonic() + IDLE_EXIT_SECONDS + 5
    while monitor_pid(roots) is not None:
        assert time.monotonic() < deadline, "a monitor let go did not exit when idle"
        await trio.sleep(0.05)


async def test_a_held_monitor_still_shuts_down_when_asked(roots, no_leaks):
    client = MonitorClient(roots)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.hold)
            while not await client.answers():
                await trio.sleep(0.05)
            # Listening comes a moment before the spawner returns and hold() sends its
            # request; a shutdown in between would meet a monitor not yet held.
            await trio.sleep(0.5)
            assert (await client.request({"op": "shutdown"}))["ok"]
            # hold() returns by itself once the monitor has gone
    assert monitor_pid(roots) is None
