"""The scheduler's errors: each names the services involved and says what to change."""

from __future__ import annotations

from stackd.errors import ConflictError, Location, SpecError


class MissingDependencyError(SpecError):
    """A service depends on (links to, shares a namespace with…) a service that isn't there."""

    def __init__(
        self, service: str, target: str, kind: str, *, location: Location | None,
        known: list[str],
    ) -> None:
        super().__init__(
            f"service {service!r} refers to undefined service {target!r} in {kind}",
            location=location,
            hint=(f"define service {target!r}, fix the name (services: {', '.join(known)})"
                  + (", or mark the dependency `required: false`"
                     if kind == "depends_on" else "")),
        )
        self.service = service
        self.target = target
        self.kind = kind


class DependencyCycleError(SpecError):
    """The services depend on each other in a circle, so none can start first."""

    def __init__(self, cycle: list[str], lines: list[str], *,
                 location: Location | None) -> None:
        super().__init__(
            "dependency cycle: " + " → ".join(cycle) + "".join(f"\n  {ln}" for ln in lines),
            location=location,
            hint="remove one of these dependencies",
        )
        self.cycle = cycle

    def __str__(self) -> str:
        # Every edge line already carries its own location; `location` (the first
        # edge's) is kept for callers that want one place to point at.
        return f"{self.message}\n  hint: {self.hint}"


class UnschedulableError(ConflictError):
    """The stack's reservations or constraints cannot be met by the nodes available."""

    def __init__(self, message: str, *, service: str, hint: str) -> None:
        super().__init__(message, hint=hint)
        self.service = service
