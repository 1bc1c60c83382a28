"""Which volumes a commit dropped (pure): declared by an earlier applied revision of
the stack, not by the current one, and not external. Only these are removed under
--prune-volumes, never a volume the stack did not declare itself (anonymous ones,
another stack's, one made with `stackd volume create`)."""

from __future__ import annotations

from collections.abc import Iterable

from stackd.spec.model import Stack


def declared(stack: Stack) -> set[str]:
    return {stack.volume_host_name(key) for key, vol in stack.volumes.items()
            if not vol.external}


def dropped_volumes(earlier: Iterable[Stack], current: Stack) -> list[str]:
    before: set[str] = set()
    for stack in earlier:
        before |= declared(stack)
    keep = declared(current) | {current.volume_host_name(k) for k in current.volumes}
    return sorted(before - keep)
