"""The live record of each container under the run dir, and its status as the kernel
tells it (pid + the process's start time, so a reused pid is not mistaken for ours).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from stackd.errors import StackdError
from stackd.filemodes import open_private
from stackd.runtime.layout import ContainerPaths
from stackd.runtime.model import ContainerState, ExitStatus

TYPE_CHECKING = False  # typing's, without importing typing: see specview
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from stackd.runtime.containerspec import ContainerSpec
    from stackd.runtime.model import Status

    # What turns a spec record's JSON into a spec: the daemon's side reads it into the
    # pydantic model; the monitor, which never imports pydantic (issue #20), passes
    # specview.load_spec. Either raises ValueError or a StackdError for a spec that is
    # not one.
    SpecParser = Callable[[dict[str, Any]], ContainerSpec]


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically: a reader sees the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    # 0600: the spec holds the container's environment (and configs, secrets).
    try:
        with os.fdopen(open_private(tmp, os.O_WRONLY | os.O_TRUNC), "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk: leave no half-written file behind
        raise


def read_json(path: Path | str) -> dict[str, Any] | None:
    try:
        with open(path) as f:
            data: dict[str, Any] = json.load(f)
            return data
    except (FileNotFoundError, ValueError):
        return None


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat, or None if the pid is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    fields = raw[raw.rindex(b")") + 2:].split()
    if fields[0] == b"Z":
        return None
    return int(fields[19])


def is_alive(pid: int | None, start: int | None) -> bool:
    return pid is not None and start is not None and process_start_time(pid) == start


class Unreadable(Exception):
    """A record file that exists but cannot be used; str() says why."""


def read_record(path: Path | str) -> dict[str, Any] | None:
    """A JSON object from `path`; None if there is no such file; Unreadable if there is
    one that is not a JSON object (garbled, truncated, emptied)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise Unreadable(f"cannot be read ({e.strerror})") from None
    try:
        data = json.loads(raw)
    except ValueError:
        raise Unreadable(f"is not valid JSON ({len(raw)} bytes: garbled or truncated)"
                         ) from None
    if not isinstance(data, dict):
        raise Unreadable("is not a JSON object")
    return data


def model_spec(data: dict[str, Any]) -> ContainerSpec:
    from stackd.runtime.containerspec import ContainerSpec

    return ContainerSpec.model_validate(data)


def _load_spec(path: Path | str, parse: SpecParser) -> ContainerSpec | None:
    """A container's spec, parsed once per file: it is written at create and never
    changed, and validating it is most of the cost of listing hundreds of containers
    (the daemon lists and inspects them all the time). None: no such file;
    Unreadable: a file that is not a valid spec."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise Unreadable(f"cannot be read ({e.strerror})") from None
    parsed = _parsed_spec(str(path), st.st_ino, st.st_mtime_ns, st.st_size, parse)
    if isinstance(parsed, str):
        raise Unreadable(parsed)
    return parsed


@functools.lru_cache(maxsize=4096)
def _parsed_spec(path: str, ino: int, mtime_ns: int, size: int,
                 parse: SpecParser) -> ContainerSpec | str | None:
    try:
        data = read_record(path)
    except Unreadable as e:
        return str(e)
    if data is None:
        return None
    try:
        return parse(data)
    except (ValueError, StackdError):  # pydantic's ValidationError, specview's SpecError
        return "is not a valid container spec"


def _valid_state(data: dict[str, Any]) -> dict[str, Any]:
    ok = (isinstance(data.get("pid"), int) and isinstance(data.get("pid_start"), int)
          and all(isinstance(data.get(k), str | None) for k in ("created_at", "started_at")))
    if not ok:
        raise Unreadable("lacks a pid, its start time or valid times")
    try:
        _time(data.get("created_at"))
        _time(data.get("started_at"))
    except ValueError:
        raise Unreadable("has a time that is not a time") from None
    return data


def _placeholder_spec(container_id: str, parse: SpecParser) -> ContainerSpec:
    """What is known of a container whose spec (and its copy) cannot be read: its id."""
    return parse({"id": container_id, "name": container_id, "layers": [],
                  "process": {"args": ["?"]}})


def init_pid(pids: list[int]) -> int | None:
    """The container's first process among its cgroup's: PID 1 of its PID namespace
    (the last field of NSpid), else the oldest."""
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"NSpid:"):
                        if line.split()[-1] == b"1":
                            return pid
                        break
        except OSError:
            continue
    alive = [(process_start_time(p), p) for p in pids]
    known = sorted((start, p) for start, p in alive if start is not None)
    return known[0][1] if known else None


def started_at_of(pid_start: int) -> str | None:
    """A process's start time (ticks since boot, from /proc/<pid>/stat) as ISO time."""
    try:
        with open("/proc/stat", "rb") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith(b"btime "))
    except (OSError, StopIteration, ValueError):
        return None
    when = btime + pid_start / os.sysconf("SC_CLK_TCK")
    return datetime.fromtimestamp(when, UTC).isoformat()


def state_from_cgroup(paths: ContainerPaths) -> dict[str, Any]:
    """A stand-in for an unreadable state.json: the container's process as its cgroup
    knows it (the kernel's truth: what the record would have said, less created_at)."""
    from stackd.runtime.cgroups import manager_for

    try:
        pid = init_pid(manager_for(paths.roots.id, paths.id).pids())
    except (StackdError, OSError):
        pid = None
    start = process_start_time(pid) if pid is not None else None
    return {"pid": pid, "pid_start": start, "created_at": None,
            "started_at": started_at_of(start) if start is not None else None}


@dataclass(frozen=True, slots=True)
class RecordCheck:
    """A container's records as read, with what stood in for an unreadable one."""

    spec: ContainerSpec
    record: dict[str, Any]
    spec_problem: str | None = None  # why spec.json was not used
    spec_restorable: bool = False  # its copy in the state dir is good
    state_problem: str | None = None  # why state.json was not used

    @property
    def problem(self) -> str | None:
        parts = []
        if self.spec_problem:
            parts.append(f"spec.json {self.spec_problem}; " + (
                "its copy in the state dir is read instead" if self.spec_restorable
                else "it has no readable copy, so its labels are unknown"))
        if self.state_problem:
            parts.append(f"state.json {self.state_problem}; its process was found by "
                         "its cgroup")
        return "; ".join(parts) or None


def check_records(paths: ContainerPaths,
                  parse: SpecParser = model_spec) -> RecordCheck | None:
    """The container's spec and state record; None while it has none (being created or
    deleted). A file that cannot be read does not hide the container: the spec's copy,
    or the process its cgroup holds, stands in, and the check says why. `parse` reads
    the spec (the model by default)."""
    run = f"{paths.roots.run}/containers/{paths.id}"
    spec_problem = state_problem = None
    restorable = False
    try:
        record = read_record(f"{run}/state.json")
        if record is None:
            return None  # created this instant (or deleted): not a container yet
        record = _valid_state(record)
    except Unreadable as e:
        state_problem, record = str(e), state_from_cgroup(paths)
    try:
        spec = _load_spec(f"{run}/spec.json", parse)
        if spec is None:
            raise Unreadable("is missing")
        if spec.id != paths.id:
            raise Unreadable(f"names another container ({spec.id!r})")
    except Unreadable as e:
        spec_problem = str(e)
        try:
            spec = _load_spec(str(paths.spec_copy), parse)
        except Unreadable:
            spec = None
        restorable = spec is not None and spec.id == paths.id
        if not restorable:
            spec = _placeholder_spec(paths.id, parse)
    assert spec is not None
    return RecordCheck(spec, record, spec_problem, restorable, state_problem)


def load_state(paths: ContainerPaths) -> ContainerState | None:
    # Plain strings: this runs for every container on every list (500 of them for a
    # `stackd ps`), and building Path objects was a third of its time.
    run = f"{paths.roots.run}/containers/{paths.id}"
    check = check_records(paths)
    if check is None:
        return None
    record, spec = check.record, check.spec
    exit_data = read_json(f"{run}/exit.json")
    exit_status: ExitStatus | None = None
    finished_at = None
    status: Status
    if exit_data is not None:
        status = "exited"
        try:
            exit_status = ExitStatus.from_json(exit_data)
            finished_at = _time(exit_data.get("finished_at"))
        except (KeyError, TypeError, ValueError):  # a JSON object, but not an exit record
            exit_status = ExitStatus.lost()
    elif is_alive(record.get("pid"), record.get("pid_start")):
        status = "running" if record.get("started_at") or check.state_problem else "created"
    else:
        status = "exited"  # died while nobody was watching: exit code unknown
    alive = status != "exited"
    return ContainerState(
        id=spec.id, name=spec.name, labels=dict(spec.labels), status=status,
        pid=record.get("pid") if alive else None,
        started_at=_time(record.get("started_at")), finished_at=finished_at,
        exit=exit_status,
        netns_path=f"/proc/{record['pid']}/ns/net" if alive else None,
        spec=spec, created_at=_time(record.get("created_at")), problem=check.problem,
    )
