"""One exception tree for all of stackd.

Every error a user can cause is a `StackdError` whose message names the thing and the
fix. The CLI prints `str(err)` without a traceback and exits with `err.exit_code`:
2 for usage and stack-file mistakes, 1 for everything that went wrong at run time.
Foreign exceptions (OSError, NetlinkError, httpx errors…) are translated into these
once, at the package boundary that met them.
"""

from __future__ import annotations


class Location:
    """A place in a stack file; line and column are 1-based. Immutable.

    A plain class, not a dataclass: this module is imported by every `stackd`
    command, and `dataclasses` (with `inspect`) would add ~14 ms to each."""

    __slots__ = ("column", "file", "line")
    file: str
    line: int | None
    column: int | None

    def __init__(self, file: str, line: int | None = None, column: int | None = None) -> None:
        object.__setattr__(self, "file", file)
        object.__setattr__(self, "line", line)
        object.__setattr__(self, "column", column)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Location is immutable: cannot set {name}")

    def _key(self) -> tuple[str, int | None, int | None]:
        return (self.file, self.line, self.column)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Location) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __reduce__(self) -> tuple[type[Location], tuple[str, int | None, int | None]]:
        return (Location, self._key())  # copy and pickle rebuild it through __init__

    def __repr__(self) -> str:
        return f"Location(file={self.file!r}, line={self.line!r}, column={self.column!r})"

    def __str__(self) -> str:
        if self.line is None:
            return self.file
        if self.column is None:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line}:{self.column}"


class StackdError(Exception):
    """Base of every error stackd raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class UsageError(StackdError):
    """The command line itself is wrong (unknown flag, bad value, unknown service)."""

    exit_code = 2


class SpecError(StackdError):
    """A stack file is wrong; carries where."""

    exit_code = 2

    def __init__(
        self, message: str, *, location: Location | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.location = location

    def __str__(self) -> str:
        text = self.message
        if self.location is not None:
            text = f"{text} ({self.location})"
        if self.hint:
            text = f"{text}\n  hint: {self.hint}"
        return text


class CommandNotFoundError(SpecError):
    """A container's command (or entrypoint) is not there to run: no such file, a
    dangling link, not in PATH. `run` exits 127, as docker run does."""

    exit_code = 127


class CommandNotRunnableError(SpecError):
    """A container's command is there but cannot be run: a directory, no x bit, a
    symlink loop, not a program. `run` exits 126, as docker run does."""

    exit_code = 126


class NotFoundError(StackdError):
    """The named thing does not exist (container, image, network, volume…)."""


class NoStackError(NotFoundError):
    """The daemon keeps no stack by that name (never up, or down). A verb that only
    stops things (stop, restart, kill, rm) then has nothing to do, as Compose's."""


class AlreadyExistsError(StackdError):
    """Creating something whose name is taken."""


class ConflictError(StackdError):
    """The request contradicts the current state (port taken, container running…)."""


class PausedError(ConflictError):
    """The container is paused: its cgroup is frozen, and what joins it freezes too."""


class UpdateFailedError(ConflictError):
    """A rolling update stopped: a batch's new containers did not pass the health gate
    (deploy.update_config failure_action pause or rollback)."""

    def __init__(self, message: str, *, hint: str | None = None,
                 rollback: bool = False) -> None:
        super().__init__(message, hint=hint)
        self.rollback = rollback  # failure_action: rollback — return to the revision before


class UnavailableError(StackdError):
    """Something stackd needs is missing or not answering; retrying may help."""


class HookFailedError(ConflictError):
    """A post_start lifecycle hook exited non-zero or could not run: the start failed
    (the container keeps running, as compose leaves it)."""


class NotReadyError(StackdError):
    """`up --wait`: a service did not get running and healthy (or completed): it exited,
    turned unhealthy, was rolled back, or --wait-timeout ran out."""


class HostError(StackdError):
    """The kernel or a host tool refused an operation stackd needed."""


class DiskFullError(UnavailableError):
    """The file system under the state root or run dir has no space (or inodes) left.
    Retrying helps once space is freed; nothing half-written is kept."""


# How the daemon's "error" event for a reconcile that failed for good begins; the
# apply that asked for it ends with the same error, so `up` says it once.
RECONCILE_FAILED = "reconcile failed: "

# errno ENOSPC and EDQUOT (a quota is a full disk to whoever hits it); literal numbers,
# because this module is imported by every command and must stay import-light.
_DISK_FULL_ERRNOS = (28, 122)
_SQLITE_FULL = 13


def disk_full(exc: BaseException, where: str = "") -> DiskFullError | None:
    """The typed error for `exc` if it means "no space left" (an OSError ENOSPC/EDQUOT,
    or SQLite's SQLITE_FULL "database or disk is full"); else None. The one place that
    knows what a full disk looks like: state/, runtime/ and the CLI call it."""
    if isinstance(exc, DiskFullError):
        return exc
    full = (isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS) or (
        getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL
        or (type(exc).__name__ == "OperationalError" and "disk is full" in str(exc)))
    if not full:
        return None
    target = f" ({where})" if where else ""
    return DiskFullError(
        f"no space left on the disk{target}: {getattr(exc, 'strerror', None) or exc}",
        hint="free space under the state root (or the run dir); stackd retries and "
        "recovers by itself once there is room")


_ERRNO_PREFIX = "[Errno "


def reason(exc: BaseException) -> str:
    """What a foreign error (OSError, an httpx error) says, in its own words and
    without Python's: no class name or repr, no "[Errno -2]"; its kind in words when
    it says nothing (a timeout often does not)."""
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    if text.startswith(_ERRNO_PREFIX) and "] " in text:
        text = text.split("] ", 1)[1]
    if text:
        return text
    words = "".join(f" {c.lower()}" if c.isupper() else c for c in type(exc).__name__)
    return words.strip().removesuffix(" error") or "failed"
