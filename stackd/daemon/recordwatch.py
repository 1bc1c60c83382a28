"""Containers whose records under the run dir cannot be read (garbled, truncated).

The runtime already lists such a container (its `problem` says what stood in for the
unreadable file: the spec's copy, the process found by its cgroup), so it is neither
hidden nor taken for a stray. This loop has the monitor quarantine each bad file
(moved aside, replaced) and reports it once as a `heal` event (attrs
{"fault": "unreadable_record"}), or as an `error` if nothing can stand in for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from stackd import hostnames
from stackd.errors import NotFoundError, StackdError

# A look lists every container (~80 ms at 500): rarely enough to stay out of an idle
# daemon's CPU, often enough that a bad record is quarantined soon.
CHECK_INTERVAL = 10.0

Emit = Callable[..., object]


async def watch_records(world: Any, emit: Emit) -> None:
    reported: set[tuple[str, str]] = set()  # (container, problem) said already
    while True:
        await trio.sleep(CHECK_INTERVAL)
        runtime = getattr(getattr(world, "ports", None), "runtime", None)
        if runtime is None:
            continue  # the daemon is still starting
        try:
            await check_once(runtime, emit, reported)
        except StackdError as err:  # a full disk, a monitor restarting: next round
            emit("error", message=f"checking container records: {err}")


async def check_once(runtime: Any, emit: Emit, reported: set[tuple[str, str]]) -> None:
    for state in await runtime.list():
        if state.problem is None or (state.id, state.problem) in reported:
            continue
        try:
            done = await runtime.repair(state.id)
            after = await runtime.inspect(state.id)
        except NotFoundError:
            continue  # removed meanwhile
        project = state.labels.get(hostnames.LABEL_PROJECT)
        if after.problem is None:
            emit("heal", project=project, container=state.name,
                 message="unreadable record quarantined: " + "; ".join(done),
                 fault="unreadable_record")
        else:  # said once; it stays listed with its problem
            reported.add((state.id, state.problem))
            emit("error", project=project, container=state.name,
                 message=f"unreadable record: {after.problem}", fault="unreadable_record")
