"""Helpers of the exec tests (a unique module name: test dirs share sys.path)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import trio

from stackd.runtime import ContainerState
from stackd.runtime.cgroups import manager_for
from stackd.runtime.exec import exec_in


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    except (FileNotFoundError, ProcessLookupError):
        return []


async def cancel_exec_once_running(running: ContainerState, root_id: str) -> None:
    """Exec `sleep 100`, wait until the host sees that very process in the container's
    cgroup, cancel the exec, and wait (5 s at most) for the process to be gone."""
    cgroup = manager_for(root_id, running.id)
    before = set(cgroup.pids())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(exec_in, running, ["sleep", "100"]))
        with trio.fail_after(5):
            while not (ours := [p for p in set(cgroup.pids()) - before
                                if _cmdline(p) == ["sleep", "100"]]):
                await trio.sleep(0.02)
        nursery.cancel_scope.cancel()
    with trio.fail_after(5):
        while set(ours) & set(cgroup.pids()):
            await trio.sleep(0.05)
    assert set(cgroup.pids()) == before
