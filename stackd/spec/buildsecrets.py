"""A service's `build.secrets`: which file each `RUN --mount=type=secret,id=…` gets.
Pure (no I/O), so the reconciler may use it; the builder reads the files."""

from __future__ import annotations

from pathlib import Path

from stackd.errors import SpecError
from stackd.spec.model import Stack


def build_secrets(stack: Stack, service: str) -> dict[str, Path]:
    """The service's `build.secrets`: the id a `RUN --mount=type=secret` names (the
    reference's target, else its source) → the top-level secret's file."""
    svc = stack.services[service]
    out: dict[str, Path] = {}
    for ref in svc.build.secrets if svc.build is not None else ():
        obj = stack.secrets.get(ref.source)
        loc = stack.location_of(("services", service, "build", "secrets"))
        if obj is None:
            raise SpecError(f"service {service!r}: build secret {ref.source!r} is not "
                            "defined", location=loc,
                            hint=f"declare it under the top-level secrets: {ref.source}: "
                            "{file: ./PATH}")
        if obj.file is None:
            raise SpecError(f"service {service!r}: build secret {ref.source!r} must come "
                            "from a file: the builder mounts files only", location=loc,
                            hint=f"give secrets.{ref.source} a file: (environment: and "
                            "content: are for containers)")
        out[ref.target or ref.source] = Path(obj.file)
    return out
