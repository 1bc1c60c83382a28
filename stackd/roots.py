"""Where one stackd instance keeps its files, and the short id that keeps its host names apart.

`STACKD_ROOT` (default /var/lib/stackd) holds durable state: the database, images,
volumes, container upper dirs, logs. `STACKD_RUN` (default /run/stackd) holds what dies
with the machine: sockets, pid files, live container state. Tests give every test its
own pair, so two roots must never collide on the host: every host name stackd makes
(devices, cgroups, nft chains) carries `Roots.id`, a short hash of the state root.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_STATE_ROOT = "/var/lib/stackd"
DEFAULT_RUN_ROOT = "/run/stackd"
# A unix socket's path is at most 107 bytes; the longest one in the run root is
# "/monitor.sock".
MAX_RUN_ROOT = 107 - len("/monitor.sock")


class Roots:
    """A state root and a run root. Immutable; a plain class rather than a dataclass
    because every `stackd` command imports it (see errors.Location)."""

    __slots__ = ("_owner", "run", "state")
    state: Path
    run: Path
    _owner: str | None

    def __init__(self, state: Path, run: Path) -> None:
        object.__setattr__(self, "state", state)
        object.__setattr__(self, "run", run)
        object.__setattr__(self, "_owner", None)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Roots is immutable: cannot set {name}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Roots) and (self.state, self.run) == (other.state, other.run)

    def __hash__(self) -> int:
        return hash((self.state, self.run))

    def __repr__(self) -> str:
        return f"Roots(state={self.state!r}, run={self.run!r})"

    def __reduce__(self) -> tuple[type[Roots], tuple[Path, Path]]:
        return (Roots, (self.state, self.run))

    @property
    def id(self) -> str:
        """Four hex characters derived from the state root; part of every host name.
        Sixteen bits: two live roots may share one, so what a root makes on the host
        also records `owner_id` (see leaks.lister)."""
        return self.owner_id[:4]

    @property
    def owner_id(self) -> str:
        """The sha256 (hex) of the resolved state root: who owns a host resource, as
        recorded on it (a device's ifalias, an nft chain's name). Computed once (it
        resolves the path: the daemon asks for it all the time)."""
        if self._owner is not None:
            return self._owner
        import hashlib  # here: OpenSSL's load is 5 ms of every command's start-up

        digest = hashlib.sha256(str(self.state.resolve()).encode()).hexdigest()
        object.__setattr__(self, "_owner", digest)
        return digest

    @property
    def chain_id(self) -> str:
        """What this root's nft chains are named by (`hostnames.nft_chain_prefix`): the
        root id and 32 more bits, so roots whose ids collide keep apart chains."""
        return self.owner_id[:12]

    @classmethod
    def from_env(cls, environ: os._Environ[str] | dict[str, str] | None = None) -> Roots:
        env = os.environ if environ is None else environ
        run = Path(env.get("STACKD_RUN", DEFAULT_RUN_ROOT))
        if len(os.fsencode(os.path.abspath(run))) > MAX_RUN_ROOT:
            # Its sockets (monitor.sock the longest) must fit a unix socket's 108-byte
            # address: past it, every command ended in "lost the stackd daemon … AF_UNIX
            # path too long".
            from stackd.errors import UsageError

            raise UsageError(f"STACKD_RUN is {len(os.fsencode(os.path.abspath(run)))} "
                             f"bytes long: the sockets in it need it at most {MAX_RUN_ROOT}",
                             hint=f"set STACKD_RUN to a shorter directory (the default is "
                                  f"{DEFAULT_RUN_ROOT})")
        return cls(state=Path(env.get("STACKD_ROOT", DEFAULT_STATE_ROOT)), run=run)

    def ensure(self) -> Roots:
        """Make both roots, root's only (0700): an existing root is tightened too, with
        what lies directly in it, so one an older stackd left open is closed at start."""
        from stackd.filemodes import private_dir, tighten

        for root in (self.state, self.run):
            private_dir(root, parents=True)
            tighten(root)
        return self
