"""`pull` and `push` with no image: the stack's services' images, as compose's.

Pure: which references a stack's services pull or push. `pull` takes each service's
`image:` that no `build:` makes (a built one is not in a registry yet: compose's
--ignore-buildable, here always); `push` takes each service that is built and names
its `image:` (the others are someone else's images, compose skips them too)."""

from __future__ import annotations

from stackd.spec.image_names import image_ref
from stackd.spec.model import Stack


def only_services(stack: Stack, named: list[str], *, include_deps: bool) -> Stack:
    """The stack with only the services `named` (and, with include_deps, those they
    depend on); the whole stack when none is named. Unknown names are refused."""
    if not named:
        return stack
    from stackd.scheduler import with_dependencies
    from stackd.scheduler.order import check_named

    check_named(stack.services, named)
    if include_deps:
        needs = {n: list(s.depends_on) for n, s in stack.services.items()}
        named = sorted(with_dependencies(needs, named))
    return stack.model_copy(update={"services": {
        n: s for n, s in stack.services.items() if n in named}})


def is_image_name(name: str) -> bool:
    """A name only an image has (`redis:7`, `ghcr.io/a/b`, `x@sha256:…`): no service
    name holds a ':', '/' or '@'."""
    return any(c in name for c in ":/@")


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
