"""A daemon stream (`up`, `progress`, a lifecycle verb) ends with the outcome of the
pass it waited for, after every event that pass published — CI once saw `up` of a
rolling update end without its last "batch 3/3 … done" line, because the outcome
overtook the events still on their way to the stream."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from stackd.daemon.engine import Engine
from stackd.roots import Roots
from stackd.state.db import StateDB


async def streamed(engine: Engine, outcome: Callable[[], Awaitable[dict[str, object]]],
                   within: float) -> list[str]:
    """What the stream of stack "web" showed: event messages, then "done"."""
    shown = []
    with trio.fail_after(within):
        async with engine._events_until("web", outcome) as stream:
            async for item in stream:
                event = item.get("event")
                shown.append(event["message"] if isinstance(event, dict) else "done")
    return shown


async def test_the_last_events_of_a_pass_come_before_its_outcome(tmp_path: Path) -> None:
    roots = Roots(state=tmp_path / "state", run=tmp_path / "run").ensure()
    db = StateDB.open(tmp_path / "state.db")
    engine = Engine(roots, object(), db)  # type: ignore[arg-type]  # no world is asked

    async def outcome() -> dict[str, object]:
        await trio.sleep(0.1)  # the pass runs; the stream is subscribed by now
        # Its last steps publish, and it ends with no checkpoint in between.
        for n in (1, 2, 3):
            engine.bus.emit("progress", project="web", message=f"batch {n}/3 done")
        engine.bus.emit("progress", project="other", message="another stack's")
        return {"result": "ok"}

    try:
        shown = await streamed(engine, outcome, within=10)
    finally:
        db.close()
    assert shown == ["batch 1/3 done", "batch 2/3 done", "batch 3/3 done", "done"]


async def test_events_published_before_the_stream_subscribes_are_shown(
        tmp_path: Path) -> None:
    """The stream starts with the request: an event published before its task first
    ran (a fast pass) is part of it, and the outcome does not wait for it in vain."""
    roots = Roots(state=tmp_path / "state", run=tmp_path / "run").ensure()
    db = StateDB.open(tmp_path / "state.db")
    engine = Engine(roots, object(), db)  # type: ignore[arg-type]
    engine.bus.emit("progress", project="web", message="before the request")

    async def outcome() -> dict[str, object]:
        engine.bus.emit("progress", project="web", message="at once")
        return {"result": "ok"}

    try:
        shown = await streamed(engine, outcome, within=2)  # well under the drain's limit
    finally:
        db.close()
    assert shown == ["at once", "done"]
