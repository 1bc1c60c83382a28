"""A source's sync status (Argo CD's small state machine), derived from facts (pure).

Failed      the newest commit cannot be applied (fetch, signature or stack file
            error) or its rollout failed its health checks and was rolled back; it
            stays Failed until a newer commit arrives.
Progressing the applied commit's revision has not finished converging yet.
Degraded    the applied commit's revision converged with an error, or drift was
            found and is only reported (--no-self-heal).
OutOfSync   a newer commit is known but not applied (suspended), or drift was found.
Synced      the newest commit is applied and its revision converged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Phase = Literal["Synced", "OutOfSync", "Progressing", "Degraded", "Failed"]


@dataclass(frozen=True)
class Facts:
    head: str  # newest commit fetched ("" before the first fetch)
    applied: str  # commit whose revision is the stack's desired state ("" if none)
    failed: str  # a commit that failed (rolled back or unloadable), "" if none
    error: str  # the last sync's error, "" if it succeeded
    reconciled: Literal["", "ok", "requeue", "retry", "terminal"]  # applied revision's
    converged: bool  # a reconcile of the applied revision has finished
    drift: str  # what differed at the last check, "" if nothing
    self_heal: bool
    suspended: bool


def derive(f: Facts) -> Phase:
    if f.error or (f.failed and f.failed == f.head):
        return "Failed"
    if f.drift:
        return "OutOfSync" if f.self_heal else "Degraded"
    if not f.applied or (f.head and f.head != f.applied):
        return "OutOfSync"
    if not f.converged:
        return "Progressing"
    if f.reconciled in ("retry", "terminal"):
        return "Degraded"
    if f.reconciled == "requeue":
        return "Progressing"
    return "Synced"
