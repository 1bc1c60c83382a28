"""Refuse, before anything changes, a plan that would create a container whose
`devices` or `blkio_config` name what this host does not have.

The runtime resolves the same paths when it creates a container (and refuses there
too: it trusts no request), but by then the plan may have stopped the container it
was replacing. So the reconciler asks the runtime's own rule first (the caller passes
it in: `ReconcileOptions.check_devices`, the daemon's is
`runtime.devices.resolve_devices`), once per service, for the containers the plan
creates or recreates only: a device unplugged under a running container must not
stop the rest of the stack from being healed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from stackd.errors import HostError
from stackd.reconciler.plan import Action, makes_container
from stackd.runtime.containerspec import ContainerSpec

CheckDevices = Callable[[ContainerSpec], object]
"""Resolves a spec's device paths on this host; a HostError names what is wrong."""


def to_check(actions: Sequence[Action]) -> dict[str, ContainerSpec]:
    """service → the spec of one container the actions make that names host devices.
    Pure: a pass that makes none of them has nothing to look at on the host."""
    out: dict[str, ContainerSpec] = {}
    for a in actions:
        if makes_container(a):
            spec = a.container.spec
            if spec.devices or spec.resources.blkio_devices:
                out.setdefault(a.container.service, spec)
    return out


def check_host_devices(specs: dict[str, ContainerSpec], check: CheckDevices) -> None:
    """A HostError naming the service and the path when one of `specs` (`to_check`'s)
    has a device (or a block device it limits) that is missing or of the wrong kind
    here. Blocking if `check` is."""
    for service, spec in specs.items():
        try:
            check(spec)
        except HostError as exc:
            raise HostError(f"service {service!r}: {exc.message}", hint=exc.hint) from None
