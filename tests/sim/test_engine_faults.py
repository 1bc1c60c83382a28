"""The daemon's engine outlives a host watch that fails (a full disk under a container
exit used to end the daemon): it reports the failure and watches again, backing off."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import trio
import trio.testing

from stackd.daemon.engine import WATCH_RETRY, Engine
from stackd.errors import disk_full
from stackd.roots import Roots
from stackd.state.db import StateDB


class FailingWatchWorld:
    """A World of which only the host watch runs: it fails `failures` times (as trio
    reports a task's failure: an exception group), then watches quietly."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.started_at: list[float] = []

    async def watch(self, emit: object, *, task_status: trio.TaskStatus[None]) -> None:
        self.started_at.append(trio.current_time())
        task_status.started()
        await trio.sleep(0.5)
        if len(self.started_at) <= self.failures:
            full = disk_full(OSError(28, "No space left on device"), "/state/stackd.db")
            raise ExceptionGroup("watch", [full])
        await trio.sleep_forever()


async def test_a_failed_host_watch_is_reported_and_run_again(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    roots = Roots(state=tmp_path / "state", run=tmp_path / "run").ensure()
    db = StateDB.open(tmp_path / "state.db")
    world = FailingWatchWorld(failures=3)
    engine = Engine(roots, world, db)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        await trio.sleep(60)
        nursery.cancel_scope.cancel()
    db.close()

    assert len(world.started_at) == 4
    starts = world.started_at
    gaps = [round(b - a - 0.5, 3) for a, b in pairwise(starts)]
    assert gaps == [WATCH_RETRY[0], 2 * WATCH_RETRY[0], 4 * WATCH_RETRY[0]]
    failed = [e for e in engine.bus.history() if e.message.startswith("watching the host")]
    assert len(failed) == 3
    assert all(e.type == "error" and e.attrs == {"fault": "disk_full"} for e in failed)
    assert "no space left on the disk (/state/stackd.db)" in failed[0].message
