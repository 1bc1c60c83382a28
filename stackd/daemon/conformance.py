"""Type-level proof that the real packages fit the reconciler's ports (checked by mypy).

It lives in the daemon, the package that wires the real packages to the ports, so
the reconciler names none of them, not even for type checking.

Nothing here runs. Where a real class stops matching its Protocol — a renamed
parameter, a changed return type — `mypy stackd/daemon` fails on this file, long
before the daemon wires the two together. NetworkPort and VolumePort are facades
over netbridge and the volume store; only the volume store fits directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stackd.images.store import ImageStore
    from stackd.reconciler.ports import ImagePort, RuntimePort, StatePort, VolumePort
    from stackd.runtime.runtime import Runtime
    from stackd.state.intents import IntentLog
    from stackd.state.volumes import VolumeStore

    def _fits(runtime: Runtime, images: ImageStore, intents: IntentLog,
              volumes: VolumeStore) -> None:
        _r: RuntimePort = runtime
        _i: ImagePort = images
        _s: StatePort = intents
        _v: VolumePort = volumes
