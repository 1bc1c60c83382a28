"""The live record of each container under the run dir, and its status as the kernel
tells it (pid + the process's start time, so a reused pid is not mistaken for ours).
"""

from __future__ import annotations

import functools
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stackd.filemodes import open_private
from stackd.runtime.containerspec import ContainerSpec
from stackd.runtime.layout import ContainerPaths
from stackd.runtime.model import ContainerState, ExitStatus, Status


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically: a reader sees the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    # 0600: the spec holds the container's environment (and configs, secrets).
    with os.fdopen(open_private(tmp, os.O_WRONLY | os.O_TRUNC), "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


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


def _load_spec(path: Path | str) -> ContainerSpec | None:
    """A container's spec, parsed once per file: it is written at create and never
    changed, and validating it is most of the cost of listing hundreds of containers
    (the daemon lists and inspects them all the time)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _parsed_spec(str(path), st.st_ino, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=4096)
def _parsed_spec(path: str, ino: int, mtime_ns: int, size: int) -> ContainerSpec | None:
    data = read_json(Path(path))
    return ContainerSpec.model_validate(data) if data is not None else None


def load_state(paths: ContainerPaths) -> ContainerState | None:
    # Plain strings: this runs for every container on every list (500 of them for a
    # `stackd ps`), and building Path objects was a third of its time.
    run = f"{paths.roots.run}/containers/{paths.id}"
    record = read_json(f"{run}/state.json")
    spec = _load_spec(f"{run}/spec.json")
    if record is None or spec is None:
        return None
    exit_data = read_json(f"{run}/exit.json")
    exit_status: ExitStatus | None = None
    finished_at = None
    status: Status
    if exit_data is not None:
        status = "exited"
        exit_status = ExitStatus.from_json(exit_data)
        finished_at = _time(exit_data.get("finished_at"))
    elif is_alive(record.get("pid"), record.get("pid_start")):
        status = "running" if record.get("started_at") else "created"
    else:
        status = "exited"  # died while nobody was watching: exit code unknown
    alive = status != "exited"
    return ContainerState(
        id=spec.id, name=spec.name, labels=dict(spec.labels), status=status,
        pid=record.get("pid") if alive else None,
        started_at=_time(record.get("started_at")), finished_at=finished_at,
        exit=exit_status,
        netns_path=f"/proc/{record['pid']}/ns/net" if alive else None,
        spec=spec, created_at=_time(record.get("created_at")),
    )
