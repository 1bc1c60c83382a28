"""Refuse, before anything changes, a service whose `devices` or `blkio_config` name
what this host does not have.

The runtime resolves the same paths when it creates a container (and refuses there
too: it trusts no request), but by then an `up` may have stopped the container it was
replacing. So the reconciler asks the runtime's own rule first (the caller passes it
in: `ReconcileOptions.check_devices`, the daemon's is `runtime.devices.resolve_devices`),
once per service, on the host that will run it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from stackd.errors import HostError, SpecError
from stackd.reconciler.desired import DesiredContainer
from stackd.runtime.containerspec import ContainerSpec
from stackd.spec.model import Stack

CheckDevices = Callable[[ContainerSpec], object]
"""Resolves a spec's device paths on this host; a HostError names what is wrong."""


def check_host_devices(stack: Stack, containers: Sequence[DesiredContainer],
                       check: CheckDevices) -> None:
    """A SpecError naming the service and the path when one of its devices (or block
    devices it limits) is missing or of the wrong kind here. Blocking if `check` is."""
    seen: set[str] = set()
    for c in containers:
        if c.service in seen:
            continue
        seen.add(c.service)
        if not (c.spec.devices or c.spec.resources.blkio_devices):
            continue
        try:
            check(c.spec)
        except HostError as exc:
            raise SpecError(f"service {c.service!r}: {exc.message}",
                            location=stack.location_of(("services", c.service)),
                            hint=exc.hint) from None
