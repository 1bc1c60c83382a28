"""`Runtime`: the runtime's API for the reconciler, image builds and networking (trio).

Changes go through the root's monitor process (client.py / monitor.py); reads (list,
inspect, stats, logs) come straight from the run dir, the kernel and the log files,
so any process can make them, including one started after its creator was killed.
(`list` asks for a monitor only when it finds a create a killed monitor left: the
new monitor undoes it, docs/runtime.md.)
"""

from __future__ import annotations

import dataclasses
import os
import signal
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from stackd.errors import ConflictError, NotFoundError, SpecError, UnavailableError
from stackd.roots import Roots
from stackd.runtime import logfile, processes, specview
from stackd.runtime.cgroups import manager_for
from stackd.runtime.client import MonitorClient
from stackd.runtime.containerspec import ContainerSpec
from stackd.runtime.layout import ContainerPaths, check_id, containers_dir
from stackd.runtime.model import ContainerState, ExitStatus, LogRecord, Stats
from stackd.runtime.netcounters import net_bytes
from stackd.runtime.statefile import load_state

if TYPE_CHECKING:
    from stackd.runtime.exec import ExecResult

FOLLOW_INTERVAL = 0.1  # seconds between looks at a followed log
# A follower across restarts ends once its container and log have been gone this long:
# far longer than a restart's delete-then-create takes, short enough for a `down`.
GONE_AFTER = 3.0


# How the monitor's schema check words a field it does not know (specview._object).
EXTRA_FIELD = "extra inputs are not permitted"


def wire_spec(spec: ContainerSpec) -> dict[str, Any]:
    """A spec as sent to the monitor: the fields that differ from their defaults only,
    so a monitor started by an older stackd (it outlives the daemon's upgrade) takes
    every spec that uses nothing newer than it knows."""
    return spec.model_dump(mode="json", exclude_defaults=True)


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
        await self._send_spec({"op": "create", "spec": wire_spec(spec)})
        return await self.inspect(spec.id)

    async def respawn(self, spec: ContainerSpec, *, keep_layer: bool = False
                      ) -> ContainerState:
        """Create an exited container again from `spec` (a restart): same id, its log
        going on — delete(keep_logs) then create, except that `inspect` and `list`
        never miss it: they show it exited until the new process is created.
        keep_layer: its writable layer goes on too (a user's restart or start, as
        Docker's); else it starts from its image again (a heal)."""
        check_id(spec.id)
        await self._send_spec({"op": "respawn", "spec": wire_spec(spec),
                               "keep_layer": keep_layer})
        return await self.inspect(spec.id)

    async def replace_older_monitor(self) -> str | None:
        """After an upgrade the monitor is still the old stackd's (it outlives the
        daemon), and refuses what only the new one knows. It is ended, its containers
        going on and adopted by the next monitor, as after a crash — unless one has a
        terminal or an open stdin, which live in that monitor alone: then it stays.
        What was done, for the daemon's log; None when nothing was to do."""
        if not self.monitor.alive():
            return None
        reply = await self.monitor.request({"op": "ping"})
        if reply.get("schema") == specview.schema_digest():
            return None
        pid = reply.get("pid")
        interactive = sorted(s.name for s in await self.list()
                             if s.status in ("running", "paused") and s.spec is not None
                             and (s.spec.process.terminal or s.spec.process.stdin_open))
        if interactive or not isinstance(pid, int):
            return (f"the runtime monitor (pid {pid}) is the stackd's from before the "
                    f"upgrade and stays, for {', '.join(interactive[:3])}'s terminal or "
                    "stdin: a container that uses something newer is refused until it goes")
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return None  # gone already: the next request starts a new one
        try:
            # The pid answered a moment ago; still this root's monitor (its name and its
            # run dir), never a process that took the pid since.
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            if b"stackd.runtime.monitor" not in argv or str(self.roots.run).encode() not in argv:
                return None
            signal.pidfd_send_signal(pidfd, signal.SIGTERM)
        except OSError:
            return None
        finally:
            os.close(pidfd)
        with trio.move_on_after(10):
            while self.monitor.alive():
                await trio.sleep(0.05)
        return (f"the runtime monitor (pid {pid}) of the stackd from before the upgrade "
                "was replaced; its containers run on, adopted by the new one")

    async def _send_spec(self, message: dict[str, Any]) -> None:
        try:
            await self.monitor.request(message)
        except SpecError as e:
            if EXTRA_FIELD not in e.message:
                raise
            reply = await self.monitor.request({"op": "ping"})
            if reply.get("schema") == specview.schema_digest():
                raise
            raise UnavailableError(
                f"the runtime monitor (pid {reply.get('pid')}) is the stackd's from before "
                f"the upgrade and cannot make this container: {e.message}",
                hint="it is replaced once it runs no container (down or stop the stacks, "
                     "then `stackd daemon stop`); ending it by its pid also works — the "
                     "containers keep running and the next monitor adopts them, but one "
                     "with a tty loses it") from None

    async def start(self, container_id: str) -> None:
        """Start the created container's process. Nothing is read back: every caller
        goes on without the state, and reading it (two records, the spec parsed) was
        ~3% of an `up`'s CPU; `inspect` reads it."""
        await self.monitor.request({"op": "start", "id": check_id(container_id)})

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

    async def repair(self, container_id: str) -> list[str]:
        """Quarantine the container's unreadable records (a state with `problem`): moved
        aside, replaced by what stood in for them. → what was done, one line each."""
        reply = await self.monitor.request({"op": "repair", "id": check_id(container_id)})
        return [str(line) for line in reply.get("repaired", [])]

    async def list(self) -> list[ContainerState]:
        # Reading every container's records is file I/O and JSON (~1 ms a container):
        # a worker thread's, never the trio thread's (docs/daemon.md, trio's rules).
        states, unfinished = await trio.to_thread.run_sync(_load_all, self.roots)
        if unfinished and not self.monitor.alive():
            # With no monitor alive, a create cut short with its monitor: listed
            # nowhere, so nothing would ever delete it. A new monitor undoes it before
            # it answers (monitor.adopt); a live one is still making it, or undid it.
            await self.monitor.request({"op": "ping"})
            states, _ = await trio.to_thread.run_sync(_load_all, self.roots)
        return states

    async def inspect(self, container_id: str) -> ContainerState:
        return await trio.to_thread.run_sync(self.inspect_here, container_id)

    def inspect_here(self, container_id: str) -> ContainerState:
        """`inspect` on the calling thread, for a caller with no event loop to keep free
        (the CLI's exec): a worker thread would leave it multi-threaded, and a
        multi-threaded caller must start exec's fork server instead of forking."""
        state = load_state(self._paths(container_id))
        if state is None:
            raise NotFoundError(f"no container {container_id!r}",
                                hint="list containers with `stackd ps -a`")
        return state

    async def stats(self, container_id: str) -> Stats:
        state = await self.inspect(container_id)
        stats = await trio.to_thread.run_sync(manager_for(self.roots.id, container_id).stats)
        # A stopped container's recorded pid may be another process's by now.
        if state.status == "running" and state.pid and state.spec.namespaces.net != "host":
            rx, tx = await trio.to_thread.run_sync(net_bytes, state.pid)
            stats = dataclasses.replace(stats, net_rx=rx, net_tx=tx)
        return stats

    async def top(self, container_id: str) -> processes.Rows:
        """The container's processes, as `ps -ef` rows (processes.TITLES)."""
        await self.inspect(container_id)

        def read() -> processes.Rows:
            return processes.table(manager_for(self.roots.id, container_id).pids())

        return await trio.to_thread.run_sync(read)

    async def pause(self, container_id: str, paused: bool = True) -> None:
        """Freeze (or thaw) every process of a running container: the cgroup freezer.
        A SIGKILL (kill, stop's last step, delete) still ends a paused container."""
        state = await self.inspect(container_id)
        if state.status != "running":
            raise ConflictError(f"container {state.name} is not running",
                                hint="only a running container can be paused")
        cgroup = manager_for(self.roots.id, container_id)

        def freeze() -> None:
            if cgroup.frozen() == paused:  # Docker's answer to a verb that does nothing
                raise ConflictError(
                    f"container {state.name} is {'already' if paused else 'not'} paused",
                    hint="`stackd unpause` thaws it" if paused else "pause it first")
            cgroup.freeze(paused)

        await trio.to_thread.run_sync(freeze)

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
        # Log files are read in a worker thread: a log can be large, and the trio
        # thread must not stop for it (docs/daemon.md, trio's rules).
        if not follow:
            for rec in await trio.to_thread.run_sync(_read_tail, path, tail):
                yield rec
            return
        # Open the live file before reading anything, then read it from offset 0 through
        # the same descriptor: every line written later lies past the offset we keep,
        # so none falls between "read to the end" and "start watching".
        live = await trio.to_thread.run_sync(_LiveLog, path)
        try:
            head: Any = await trio.to_thread.run_sync(
                lambda: _last([*logfile.read_records_of(live.older()), *live.read()], tail))
            for rec in head:
                yield rec
            gone_since: float | None = None
            while True:
                try:
                    state: ContainerState | None = await self.inspect(container_id)
                except NotFoundError:
                    state = None
                # After the look at the state: what it wrote before exiting is read now.
                new, exists = await trio.to_thread.run_sync(live.poll)
                for rec in new:
                    yield rec
                if not across_restarts:
                    if state is None or (state.status == "exited" and state.exit is not None):
                        return
                    if state.status == "exited":
                        # Dead, but the monitor has not recorded the exit yet, so it may
                        # not have drained the pipes yet either; give up only if no
                        # monitor ever records it.
                        now = trio.current_time()
                        if gone_since is None:
                            gone_since = now
                        elif now - gone_since >= GONE_AFTER:
                            return
                elif state is None and not exists:
                    now = trio.current_time()
                    if gone_since is None:
                        gone_since = now
                    elif now - gone_since >= GONE_AFTER:
                        return
                else:
                    gone_since = None
                await trio.sleep(FOLLOW_INTERVAL)
        finally:
            live.close()

    async def exec(self, container_id: str, args: Sequence[str], **options: Any
                   ) -> ExecResult:
        """Run another process inside a running container and wait for it (exit code and
        output). Options and behaviour: `stackd.runtime.exec.exec_in`."""
        from stackd.runtime.exec import exec_in

        return await exec_in(await self.inspect(container_id), args, **options)


def _load_all(roots: Roots) -> tuple[list[ContainerState], bool]:
    """The root's containers, and whether any had no records yet: being created now, or
    left so by a monitor killed while creating it."""
    base = containers_dir(roots)
    if not base.is_dir():
        return [], False
    states = []
    unfinished = False
    for entry in sorted(os.listdir(base)):
        if entry.startswith("."):
            continue  # being removed
        state = load_state(ContainerPaths(roots, entry))
        if state is not None:
            states.append(state)
        else:
            unfinished = True
    return states, unfinished


def _last(records: Iterable[LogRecord], tail: int | None) -> list[LogRecord]:
    if tail is None:
        return list(records)
    return list(deque(records, maxlen=tail)) if tail > 0 else []


def _read_tail(path: Path, tail: int | None) -> list[LogRecord]:
    return _last(logfile.read_records(path), tail)


class _LiveLog:
    """A followed log file, held open: reads go on from the offset reached, so no line
    is read twice or skipped. A rotation (the name now names another inode) is noticed
    by inode; the held file (now `.1`, or unlinked) is read to its end first."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file: Any = None
        self.offset = 0
        self._open()

    def _open(self) -> bool:
        try:
            self.file = open(self.path, "rb")  # noqa: SIM115 - held across polls, closed in close()
        except FileNotFoundError:
            self.file = None
        self.offset = 0
        return self.file is not None

    def older(self) -> list[Path]:
        """The rotated files older than the one held open."""
        if self.file is None:
            return [f for f in logfile.log_files(self.path) if f != self.path]
        ino = os.fstat(self.file.fileno()).st_ino
        older = []
        for f in logfile.log_files(self.path):
            try:
                if f.stat().st_ino == ino:
                    break
            except FileNotFoundError:
                continue
            older.append(f)
        return older

    def read(self) -> list[LogRecord]:
        if self.file is None:
            return []
        self.file.seek(self.offset)
        data = self.file.read()
        end = data.rfind(b"\n") + 1  # a half-written last line waits for the next read
        self.offset += end
        out = []
        for raw in data[:end].splitlines(keepends=True):
            rec = logfile.parse_record(raw)
            if rec is not None:
                out.append(rec)
        return out

    def poll(self) -> tuple[list[LogRecord], bool]:
        """New records; and whether the log exists at all now."""
        out = self.read()
        try:
            st = self.path.stat()
        except FileNotFoundError:
            st = None
        if self.file is None:
            if st is not None and self._open():
                out += self.read()
            return out, self.file is not None
        held = os.fstat(self.file.fileno())
        if st is None or st.st_ino != held.st_ino:
            # Rotated or removed: the writer is done with the held file; finish it.
            out += self.read()
            self.file.close()
            self.file = None
            if st is not None and self._open():
                out += self.read()
        elif held.st_size < self.offset:
            self.offset = 0  # truncated in place (max_files 1)
            out += self.read()
        return out, self.file is not None

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
