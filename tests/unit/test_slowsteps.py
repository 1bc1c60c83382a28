"""The daemon's slow-step instrument: it names the task and where it held the loop."""

from __future__ import annotations

import io
import json
import time

import trio

from stackd.daemon.slowsteps import SlowSteps


def burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


async def hog() -> None:
    await trio.sleep(0)
    burn(0.12)  # no checkpoint: one step of 120 ms of CPU


async def polite() -> None:
    for _ in range(20):
        await trio.sleep(0.005)


def test_a_step_that_holds_the_loop_is_recorded_with_its_task_and_stack() -> None:
    out = io.StringIO()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(hog)
            nursery.start_soon(polite)

    trio.run(main, instruments=[SlowSteps(out, 0.05)])
    # By CPU time: other jobs on the machine may stretch a polite step's wall time.
    steps = [s for s in map(json.loads, out.getvalue().splitlines()) if s["cpu"] > 0.05]
    assert [s["task"].rsplit(".", 1)[-1] for s in steps] == ["hog"]
    assert steps[0]["cpu"] >= 0.1 and steps[0]["wall"] >= 0.1
    assert any(" burn" in frame for frame in steps[0]["where"]), steps
