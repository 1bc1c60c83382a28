"""What the runtime hands back: container state, exit status, usage, log records.

Plain frozen dataclasses with JSON round-trips, because the monitor process writes
them under the run dir and any other process (daemon, CLI) reads them back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

TYPE_CHECKING = False  # typing's, without importing typing: see specview
if TYPE_CHECKING:
    from typing import Any, Literal

    from stackd.runtime.containerspec import ContainerSpec

    Status = Literal["created", "running", "exited"]

UNKNOWN_CODE = 255


@dataclass(frozen=True, slots=True)
class ExitStatus:
    """How the container's first process ended: a code, or the signal that killed it.

    unknown: it ended while no monitor watched it (the monitor was killed), so nobody
    could learn how; the code is then UNKNOWN_CODE, as Docker reports for a container
    whose exit status was lost."""

    code: int
    signal: int | None = None
    oom_killed: bool = False
    unknown: bool = False

    @classmethod
    def from_wait_status(cls, status: int, *, oom_killed: bool = False) -> ExitStatus:
        import os

        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            return cls(code=128 + sig, signal=sig, oom_killed=oom_killed)
        return cls(code=os.WEXITSTATUS(status), signal=None, oom_killed=oom_killed)

    @classmethod
    def lost(cls, *, oom_killed: bool = False) -> ExitStatus:
        return cls(code=UNKNOWN_CODE, oom_killed=oom_killed, unknown=True)

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "signal": self.signal, "oom_killed": self.oom_killed,
                "unknown": self.unknown}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExitStatus:
        return cls(code=int(data["code"]), signal=data.get("signal"),
                   oom_killed=bool(data.get("oom_killed", False)),
                   unknown=bool(data.get("unknown", False)))


@dataclass(frozen=True, slots=True)
class ContainerState:
    id: str
    name: str
    labels: dict[str, str]
    status: Status
    pid: int | None
    started_at: datetime | None
    finished_at: datetime | None
    exit: ExitStatus | None
    netns_path: str | None
    spec: ContainerSpec
    created_at: datetime | None = None
    # Set when a record of it could not be read (garbled, truncated): why, and what
    # stood in (the spec's copy, the process found by its cgroup). See statefile.
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Stats:
    memory_bytes: int
    cpu_ns: int
    pids: int
    memory_limit: int | None = None  # its cgroup's; None: no limit of its own
    # Bytes read and written by its block devices (its blkio/io cgroup; 0 where it has
    # none) and received and sent on its network interfaces (0 in the host's network).
    block_read: int = 0
    block_write: int = 0
    net_rx: int = 0
    net_tx: int = 0


@dataclass(frozen=True, slots=True)
class LogRecord:
    time: datetime
    stream: Literal["stdout", "stderr"]
    line: str  # without the trailing newline
