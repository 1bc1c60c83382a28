"""What every cgroup manager does, and the small file helpers they share."""

from __future__ import annotations

import errno
import os
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from stackd.errors import HostError
from stackd.runtime.model import Stats

TYPE_CHECKING = False  # typing's, without importing typing: see specview
if TYPE_CHECKING:
    from typing import Protocol

    from stackd.runtime.containerspec import Device, Resources
else:
    Protocol = object  # a Protocol to mypy; nothing at run time needs it to be one


class CgroupManager(Protocol):
    """One container's cgroup, in however many hierarchies the host has."""

    relpath: str

    def create(self) -> None:
        """Make the cgroup (and its stackd/<root id> parents) in every hierarchy."""

    def apply(self, resources: Resources, *, privileged: bool = False,
              devices: Sequence[Device] = (), rules: Sequence[str] = ()) -> None:
        """Write the limits and the device rules (the defaults plus `devices`, resolved,
        plus the spec's own `rules`); a limit the host cannot enforce is a HostError."""

    def procs_files(self) -> list[str]:
        """cgroup.procs files a process writes "0" into to join (while it sees the host's
        mount namespace)."""

    def join(self, pid: int) -> None: ...

    def pids(self) -> list[int]: ...

    def stats(self) -> Stats: ...

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer took from this cgroup."""

    def freeze(self, frozen: bool) -> None:
        """Freeze every process of the container (`stackd pause`), or thaw them."""

    def frozen(self) -> bool: ...

    def kill_all(self) -> None:
        """SIGKILL every process, frozen ones too."""

    def destroy(self) -> None:
        """Remove the cgroup everywhere (it must hold no process). The stackd/<root id>
        parent stays for the next container (see `remove_root_parents`)."""

    def paths(self) -> list[Path]: ...


def write(path: Path, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        raise HostError(
            f"cannot write {value!r} to {path}: {e.strerror}",
            hint="check that the value is valid for this kernel and the controller is enabled",
        ) from e


def read(path: Path) -> str:
    with open(path) as f:
        return f.read()


def read_int(path: Path, default: int = 0) -> int:
    try:
        return int(read(path).strip())
    except (OSError, ValueError):
        return default


def is_frozen(cgroup_dir: Path) -> bool:
    """Whether the processes of a cgroup directory are frozen: v1's freezer hierarchy
    says so in freezer.state, v2's in cgroup.events; any other directory is not."""
    state = cgroup_dir / "freezer.state"
    if state.exists():
        return read(state).strip() != "THAWED"
    return read_keyed(cgroup_dir / "cgroup.events").get("frozen", 0) == 1


def read_io_bytes(path: Path) -> tuple[int, int]:
    """Bytes read and written over every device, from blkio.throttle.io_service_bytes
    ("MAJ:MIN Read N" lines) or io.stat ("MAJ:MIN rbytes=N wbytes=N …"); (0, 0) when
    the file is not there."""
    got = put = 0
    try:
        text = read(path)
    except OSError:
        return 0, 0
    for line in text.splitlines():
        words = line.split()
        if len(words) == 3 and words[2].isdigit():
            if words[1] == "Read":
                got += int(words[2])
            elif words[1] == "Write":
                put += int(words[2])
            continue
        for word in words[1:]:
            key, _, value = word.partition("=")
            if value.isdigit():
                if key == "rbytes":
                    got += int(value)
                elif key == "wbytes":
                    put += int(value)
    return got, put


def read_keyed(path: Path) -> dict[str, int]:
    """Files of "key value" lines (memory.stat, memory.events, cpu.stat…)."""
    out: dict[str, int] = {}
    try:
        for line in read(path).splitlines():
            key, _, value = line.partition(" ")
            if value.strip().lstrip("-").isdigit():
                out[key] = int(value)
    except OSError:
        pass
    return out


def read_procs(path: Path) -> list[int]:
    try:
        return [int(x) for x in read(path).split()]
    except (OSError, ValueError):
        return []


def kill_procs(procs_file: Path, rounds: int = 50) -> None:
    """SIGKILL whatever is in a cgroup until it is empty (processes may fork meanwhile)."""
    for _ in range(rounds):
        pids = read_procs(procs_file)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)


def rmdir_retrying(path: Path, timeout: float = 2.0) -> None:
    """rmdir a cgroup; the kernel answers EBUSY for a moment after its last task exits."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                raise HostError(f"cannot remove cgroup {path}: {e.strerror}",
                                hint="a process is still inside it; kill it and retry") from e
            time.sleep(0.01)


def rmdir_if_empty(path: Path, timeout: float = 2.0) -> None:
    """rmdir a parent cgroup unless it still has children; EBUSY (a child just removed
    is still being taken offline) is waited out.

    cgroupfs answers EBUSY, not ENOTEMPTY, for a cgroup with live children too, so
    look for child directories first: waiting on another root's cgroups would stall
    every monitor's exit by the timeout per hierarchy."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if any(entry.is_dir(follow_symlinks=False) for entry in os.scandir(path)):
                return  # still a parent: another container or root lives there
        except FileNotFoundError:
            return
        except OSError:
            pass
        try:
            os.rmdir(path)
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                return  # gone, or another container of this root still lives there
            time.sleep(0.01)


def retry_if_parent_vanishes(make: Callable[[], None], attempts: int = 5) -> None:
    """Run a cgroup mkdir sequence again if the shared `stackd` parent was removed under
    it: another root's monitor removes that parent when it finds it empty."""
    for attempt in range(attempts):
        try:
            make()
            return
        except FileNotFoundError:
            if attempt == attempts - 1:
                raise
