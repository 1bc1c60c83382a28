"""Where one stackd instance keeps its files, and the short id that keeps its host names apart.

`STACKD_ROOT` (default /var/lib/stackd) holds durable state: the database, images,
volumes, container upper dirs, logs. `STACKD_RUN` (default /run/stackd) holds what dies
with the machine: sockets, pid files, live container state. Tests give every test its
own pair, so two roots must never collide on the host: every host name stackd makes
(devices, cgroups, nft chains) carries `Roots.id`, a short hash of the state root.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_STATE_ROOT = "/var/lib/stackd"
DEFAULT_RUN_ROOT = "/run/stackd"


@dataclass(frozen=True, slots=True)
class Roots:
    state: Path
    run: Path

    @property
    def id(self) -> str:
        """Four hex characters derived from the state root; part of every host name."""
        return hashlib.sha256(str(self.state.resolve()).encode()).hexdigest()[:4]

    @classmethod
    def from_env(cls, environ: os._Environ[str] | dict[str, str] | None = None) -> Roots:
        env = os.environ if environ is None else environ
        return cls(
            state=Path(env.get("STACKD_ROOT", DEFAULT_STATE_ROOT)),
            run=Path(env.get("STACKD_RUN", DEFAULT_RUN_ROOT)),
        )

    def ensure(self) -> Roots:
        self.state.mkdir(parents=True, exist_ok=True, mode=0o711)
        self.run.mkdir(parents=True, exist_ok=True, mode=0o711)
        return self
