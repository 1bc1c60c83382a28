"""`Runtime`: the runtime's API for the reconciler, image builds and networking (trio).

Changes go through the root's monitor process (client.py / monitor.py); reads (list,
inspect, stats, logs) come straight from the run dir, the kernel and the log files,
so any process can make them, including one started after its creator was killed.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from stackd.errors import NotFoundError
from stackd.roots import Roots
from stackd.runtime import logfile
from stackd.runtime.cgroups import manager_for
from stackd.runtime.client import MonitorClient
from stackd.runtime.containerspec import ContainerSpec
from stackd.runtime.layout import ContainerPaths, check_id, containers_dir
from stackd.runtime.model import ContainerState, ExitStatus, LogRecord, Stats
from stackd.runtime.statefile import load_state

if TYPE_CHECKING:
    from stackd.runtime.exec import ExecResult

FOLLOW_INTERVAL = 0.1  # seconds between looks at a followed log
# A follower across restarts ends once its container and log have been gone this long:
# far longer than a restart's delete-then-create takes, short enough for a `down`.
GONE_AFTER = 3.0


class Runtime:
    def __init__(self, roots: Roots) -> None:
        self.roots = roots
        self.monitor = MonitorClient(roots)

    def _paths(self, container_id: str) -> ContainerPaths:
        return ContainerPaths(self.roots, check_id(container_id))

    async def create(self, spec: ContainerSpec) -> ContainerState:
        """Namespaces, cgroup and root filesystem made; the process waits to be started
        (OCI "created"). Its network namespace is at `state.netns_path` already."""
        check_id(spec.id)
        await self.monitor.request({"op": "create", "spec": spec.model_dump(mode="json")})
        return await self.inspect(spec.id)

    async def start(self, container_id: str) -> ContainerState:
        await self.monitor.request({"op": "start", "id": check_id(container_id)})
        return await self.inspect(container_id)

    async def kill(self, container_id: str, signal: str = "SIGTERM") -> None:
        await self.monitor.request({"op": "kill", "id": check_id(container_id),
                                    "signal": signal})

    async def wait(self, container_id: str) -> ExitStatus:
        """Block until the container's first process exits (the monitor answers when it
        reaps it; nothing polls)."""
        reply = await self.monitor.request({"op": "wait", "id": check_id(container_id)})
        return ExitStatus.from_json(reply["exit"])

    async def stop(self, container_id: str, grace: float | None = None) -> ExitStatus:
        """stop_signal, then SIGKILL after `grace` seconds (default: the spec's)."""
        state = await self.inspect(container_id)
        if state.status == "exited":
            return state.exit or await self.wait(container_id)
        if state.status == "created":
            # Nothing of the user's runs yet, and a PID 1 ignores SIGTERM anyway.
            await self.kill(container_id, "SIGKILL")
            return await self.wait(container_id)
        if grace is None:
            grace = state.spec.stop_grace
        await self.kill(container_id, state.spec.stop_signal)
        with trio.move_on_after(grace):
            return await self.wait(container_id)
        await self.kill(container_id, "SIGKILL")
        return await self.wait(container_id)

    async def delete(self, container_id: str, force: bool = False,
                     keep_logs: bool = False) -> None:
        """Unmount, remove the cgroups, the upper dir, the logs and the records.

        keep_logs: a restart (delete, then create the same id) keeps the log files; the
        next create appends to them, and `logs(follow=True, across_restarts=True)`
        follows on. Deleting an id that has only kept logs left removes them."""
        await self.monitor.request({"op": "delete", "id": check_id(container_id),
                                    "force": force, "keep_logs": keep_logs})

    async def list(self) -> list[ContainerState]:
        base = containers_dir(self.roots)
        if not base.is_dir():
            return []
        states = []
        for entry in sorted(os.listdir(base)):
            if entry.startswith("."):
                continue  # being removed
            state = load_state(ContainerPaths(self.roots, entry))
            if state is not None:
                states.append(state)
        return states

    async def inspect(self, container_id: str) -> ContainerState:
        state = load_state(self._paths(container_id))
        if state is None:
            raise NotFoundError(f"no container {container_id!r}",
                                hint="list containers with `stackd ps -a`")
        return state

    async def stats(self, container_id: str) -> Stats:
        await self.inspect(container_id)
        return manager_for(self.roots.id, container_id).stats()

    def log_path(self, container_id: str) -> Path:
        return self._paths(container_id).log

    def upper_dir(self, container_id: str) -> Path:
        """The container's writable layer (overlay upperdir): what it changed, e.g. for
        committing an image build step. Valid until `delete`."""
        return self._paths(container_id).upper

    async def logs(self, container_id: str, follow: bool = False,
                   tail: int | None = None, *, across_restarts: bool = False
                   ) -> AsyncIterator[LogRecord]:
        """The container's output, oldest first; with `follow`, keep yielding new
        records until the container has exited (or is deleted) and everything is read.

        across_restarts (`logs -f` of a stack): follow on through exits, deletes that
        keep the logs and creates of the same id — a restart — ending only when the id
        is gone for good: no container and no log for GONE_AFTER seconds. An exited
        container that is never restarted is followed until the caller cancels."""
        path = self.log_path(container_id)
        if not (across_restarts and path.exists()):
            await self.inspect(container_id)
        records: Any = logfile.read_records(path)
        if tail is not None:
            records = deque(records, maxlen=tail) if tail > 0 else ()
        for rec in records:
            yield rec
        if not follow:
            return
        # Follow from the current end of the live file.
        offset, inode = 0, None
        try:
            st0 = path.stat()
            offset, inode = st0.st_size, st0.st_ino
        except FileNotFoundError:
            pass
        gone_since: float | None = None
        while True:
            try:
                state: ContainerState | None = await self.inspect(container_id)
            except NotFoundError:
                state = None
            try:
                st = path.stat()
            except FileNotFoundError:
                st = None
            if st is not None and st.st_ino != inode:
                # Rotated: finish the old file, then start the new one at 0. (Also a log
                # made afresh, by a create after a delete that did not keep it.)
                old = logfile.rotated(path, 1)
                if inode is not None and old.exists() and old.stat().st_ino == inode:
                    for rec in _read_from(old, offset)[0]:
                        yield rec
                inode, offset = st.st_ino, 0
            elif st is not None and st.st_size < offset:
                offset = 0  # truncated in place (max_files 1)
            if st is not None:
                new, offset = _read_from(path, offset)
                for rec in new:
                    yield rec
            if not across_restarts:
                if state is None or state.status == "exited":
                    return
            elif state is None and st is None:
                now = trio.current_time()
                if gone_since is None:
                    gone_since = now
                elif now - gone_since >= GONE_AFTER:
                    return
            else:
                gone_since = None
            await trio.sleep(FOLLOW_INTERVAL)

    async def exec(self, container_id: str, args: Sequence[str], **options: Any
                   ) -> ExecResult:
        """Run another process inside a running container and wait for it (exit code and
        output). Options and behaviour: `stackd.runtime.exec.exec_in`."""
        from stackd.runtime.exec import exec_in

        return await exec_in(await self.inspect(container_id), args, **options)


def _read_from(path: Path, offset: int) -> tuple[list[LogRecord], int]:
    out: list[LogRecord] = []
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            for raw in f:
                if not raw.endswith(b"\n"):
                    break  # half-written: read it next time
                offset += len(raw)
                rec = logfile.parse_record(raw)
                if rec is not None:
                    out.append(rec)
    except FileNotFoundError:
        pass  # deleted (or moved aside by a restart) between stat and open
    return out, offset
