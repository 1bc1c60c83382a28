"""Which image a service runs: Compose's naming rule, in one place."""

from __future__ import annotations

from stackd.errors import SpecError
from stackd.spec.model import Service, Stack


def image_ref(stack: Stack, name: str, svc: Service) -> str:
    """The image a service runs; Compose names a built one `<project>-<service>`."""
    if svc.image:
        return svc.image
    if svc.build is not None:
        return f"{stack.name}-{name}"
    raise SpecError(f"service {name!r} has neither image nor build",
                    location=stack.location_of(("services", name)),
                    hint="add `image: <ref>` (or a `build:` section)")
