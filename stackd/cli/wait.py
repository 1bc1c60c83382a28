"""`up --wait`: until every service of the stack is running and healthy (or, a one-shot
job, completed), as compose's --wait; else a NotReadyError naming the service.

The decision is pure (`verdict`, over `ps -a`'s rows); `wait_ready` polls the daemon
for them. A stack whose current revision is a rollback (a failed rolling update under
failure_action: rollback) is not the stack the user asked for: that fails too.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from stackd.errors import NotReadyError

POLL = 0.25  # seconds between two looks at the containers
# A container without a healthcheck is ready once it has run this long: one that fails
# at once (a job's `exit 3`) is then seen failing, not taken for ready the moment it
# started (CI saw `up --wait` return 0 so).
SETTLE = 0.5


@dataclass(frozen=True, slots=True)
class Verdict:
    failed: str | None  # why a service will not get ready (exited, unhealthy), or None
    pending: tuple[str, ...]  # services not ready yet, each with what it is, sorted

    @property
    def ready(self) -> bool:
        return self.failed is None and not self.pending


def verdict(rows: Iterable[Mapping[str, Any]], services: Iterable[str] = (),
            now: float | None = None) -> Verdict:
    """Where the stack's containers stand (`rows`: `ps -a --format json`'s, one-offs
    left out; `services`: only those, else all; `now`: the time, for SETTLE). Pure.

    A container is ready when running and, with a healthcheck, healthy — without one,
    once it has run SETTLE seconds; an exited one is ready when it completed (exit 0:
    a one-shot job), and fails the wait otherwise. An unhealthy one fails it at once,
    as compose's does."""
    wanted = set(services)
    pending: dict[str, str] = {}
    for row in rows:
        service = str(row.get("service") or "")
        if not service or row.get("oneoff") or (wanted and service not in wanted):
            continue
        state, health, name = row.get("state"), row.get("health"), row.get("name")
        if state == "exited":
            code = row.get("exit_code")
            if code is None:
                # Its process is gone and the monitor has not recorded how yet (a lost
                # exit is recorded too, as 255): not a failure, a moment to wait.
                pending[service] = f"{service} (exiting)"
                continue
            if code != 0:
                return Verdict(f"service {service!r}: container {name} exited with code "
                               f"{code}", ())
            continue
        if state != "running" or row.get("paused"):
            pending[service] = f"{service} ({'paused' if row.get('paused') else state})"
        elif health == "unhealthy":
            return Verdict(f"service {service!r}: container {name} is unhealthy", ())
        elif health not in (None, "healthy"):
            pending[service] = f"{service} ({health})"
        elif health is None and now is not None and row.get("started_at") and \
                now - float(row["started_at"]) < SETTLE:
            # (A row without a start time — another node's — is not held back.)
            pending[service] = f"{service} (just started)"
    missing = sorted(wanted - {str(r.get("service")) for r in rows})
    for service in missing:
        pending[service] = f"{service} (no container)"
    return Verdict(None, tuple(pending[s] for s in sorted(pending)))


def wait_ready(client: Any, project: str, services: list[str],
               timeout: float | None) -> None:
    """Poll until `verdict` is ready; a NotReadyError when it fails or time runs out."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        rolled = next((s["rollback"] for s in client.get("/v1/stacks")
                       if s.get("project") == project and s.get("rollback")), "")
        if rolled:
            raise NotReadyError(f"{project}: {rolled}",
                                hint="`stackd history` shows the revisions; fix the "
                                     "update and run `stackd up` again")
        got = verdict(client.get("/v1/containers", project=project, all=True), services,
                      now=time.time())
        if got.failed is not None:
            raise NotReadyError(f"{project}: {got.failed}",
                                hint="`stackd logs` and `stackd ps -a` say why")
        if got.ready:
            return
        if deadline is not None and time.monotonic() >= deadline:
            raise NotReadyError(
                f"{project}: not ready after --wait-timeout {timeout:g}s: "
                f"{', '.join(got.pending)}",
                hint="`stackd ps` shows its state; `stackd logs` why")
        time.sleep(POLL)
