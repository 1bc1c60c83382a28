"""`pull` and `push` with no image: the stack's services' images, as compose's.

Pure: which references a stack's services pull or push. `pull` takes each service's
`image:` that no `build:` makes (a built one is not in a registry yet: compose's
--ignore-buildable, here always); `push` takes each service that is built and names
its `image:` (the others are someone else's images, compose skips them too)."""

from __future__ import annotations

from stackd.spec.image_names import image_ref
from stackd.spec.model import Stack


def pull_refs(stack: Stack) -> tuple[list[str], list[str]]:
    """(references to pull, in order, each once; services skipped as built here)."""
    refs: list[str] = []
    built: list[str] = []
    for name, svc in sorted(stack.services.items()):
        if svc.build is not None:
            built.append(name)
        elif svc.image and svc.image not in refs:
            refs.append(svc.image)
    return refs, built


def push_refs(stack: Stack) -> list[str]:
    """References of the built services that name their image, in order, each once."""
    refs: list[str] = []
    for name, svc in sorted(stack.services.items()):
        if svc.build is not None and svc.image:
            ref = image_ref(stack, name, svc)
            if ref not in refs:
                refs.append(ref)
    return refs
