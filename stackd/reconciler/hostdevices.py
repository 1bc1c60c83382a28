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
from stackd.reconciler.plan import Action, Create, Recreate, Restart
from stackd.runtime.containerspec import ContainerSpec

CheckDevices = Callable[[ContainerSpec], object]
"""Resolves a spec's device paths on this host; a HostError names what is wrong."""


def check_host_devices(actions: Sequence[Action], check: CheckDevices) -> None:
    """A HostError naming the service and the path when a container the actions make
    has a device (or a block device it limits) that is missing or of the wrong kind
    here. Blocking if `check` is."""
    seen: set[str] = set()
    for a in actions:
        if not isinstance(a, Create | Recreate) or isinstance(a, Restart):
            continue
        c = a.container
        if c.service in seen or not (c.spec.devices or c.spec.resources.blkio_devices):
            continue
        seen.add(c.service)
        try:
            check(c.spec)
        except HostError as exc:
            raise HostError(f"service {c.service!r}: {exc.message}", hint=exc.hint) from None
