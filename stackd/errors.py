"""One exception tree for all of stackd.

Every error a user can cause is a `StackdError` whose message names the thing and the
fix. The CLI prints `str(err)` without a traceback and exits with `err.exit_code`:
2 for usage and stack-file mistakes, 1 for everything that went wrong at run time.
Foreign exceptions (OSError, NetlinkError, httpx errors…) are translated into these
once, at the package boundary that met them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Location:
    """A place in a stack file; line and column are 1-based."""

    file: str
    line: int | None = None
    column: int | None = None

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


class NotFoundError(StackdError):
    """The named thing does not exist (container, image, network, volume…)."""


class AlreadyExistsError(StackdError):
    """Creating something whose name is taken."""


class ConflictError(StackdError):
    """The request contradicts the current state (port taken, container running…)."""


class UnavailableError(StackdError):
    """Something stackd needs is missing or not answering; retrying may help."""


class HostError(StackdError):
    """The kernel or a host tool refused an operation stackd needed."""
