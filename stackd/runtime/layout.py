"""Where the runtime keeps each container's files. Pure path arithmetic.

Durable (state root, survives reboot): the writable upper layer, overlay work dir,
the mount point of the merged root, files given by the spec, the logs, and a copy of
the spec.
Volatile (run dir, dies with the machine): the spec as given, the live state
record (pid + its start time), the exit record, and the monitor's socket.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from stackd.errors import UsageError
from stackd.roots import Roots

_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,127}$")


def check_id(container_id: str) -> str:
    if not _ID.match(container_id):
        raise UsageError(
            f"invalid container id {container_id!r}",
            hint="use 1-128 characters of a-z, 0-9, '-', '_', '.', starting with a letter or digit",
        )
    return container_id


@dataclass(frozen=True, slots=True)
class MonitorPaths:
    run: Path

    @property
    def socket(self) -> Path:
        return self.run / "monitor.sock"

    @property
    def pidfile(self) -> Path:
        return self.run / "monitor.pid"

    @property
    def lock(self) -> Path:
        return self.run / "monitor.lock"

    @property
    def log(self) -> Path:
        return self.run / "monitor.log"


@dataclass(frozen=True, slots=True)
class ContainerPaths:
    roots: Roots
    id: str

    @property
    def state_dir(self) -> Path:
        return self.roots.state / "containers" / self.id

    @property
    def run_dir(self) -> Path:
        return self.roots.run / "containers" / self.id

    @property
    def upper(self) -> Path:
        return self.state_dir / "upper"

    @property
    def work(self) -> Path:
        return self.state_dir / "work"

    @property
    def rootfs(self) -> Path:
        return self.state_dir / "rootfs"

    @property
    def files(self) -> Path:
        return self.state_dir / "files"

    @property
    def log(self) -> Path:
        return self.state_dir / "log.json"

    @property
    def spec_copy(self) -> Path:
        """The spec again, in the durable state dir: what an unreadable spec.json is
        restored from."""
        return self.state_dir / "spec.json"

    @property
    def spec(self) -> Path:
        return self.run_dir / "spec.json"

    @property
    def state(self) -> Path:
        return self.run_dir / "state.json"

    @property
    def exit(self) -> Path:
        return self.run_dir / "exit.json"


def containers_dir(roots: Roots) -> Path:
    return roots.run / "containers"
