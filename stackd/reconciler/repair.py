"""repair: the controller's answer to what the watchers saw. Only the stack's worker
(inside its reconcile, holding the stack's key) calls it, so it never races an apply.

- An exited container its restart policy restarts is started again once its backoff
  delay has passed (100 ms doubling to 30 s, see restart.py); until then `repair`
  returns how long to wait, and the reconcile asks to be run again after that long
  (a requeue-after, not a sleep: the key is free meanwhile).
- A running container that turned unhealthy (unless the service opted out) or whose
  cgroup, netns or veth was removed from outside is killed; its exit then comes back
  as a fact, and the restart follows as above.
"""

from __future__ import annotations

import math
from collections.abc import Collection

import trio

from stackd.errors import StackdError
from stackd.reconciler import lifecycle
from stackd.reconciler.ports import Adapters
from stackd.reconciler.supervisor import Supervisor, Watch


async def repair(project: str, ports: Adapters, supervisor: Supervisor, *,
                 only: Collection[str] | None = None,
                 busy: set[str] | None = None) -> float | None:
    """Restart what is due, kill what must go; seconds until the next restart is due.

    `only`: just these container ids (an apply waiting on a dependency's health).
    `busy`: ids another task of this same reconcile is acting on; skipped, and the
    ids acted on here are added while they are.
    """
    busy = busy if busy is not None else set()
    next_due = math.inf
    for w in supervisor.watches():
        cid = w.container_id
        if w.project != project or cid in busy or (only is not None and cid not in only):
            continue
        if w.running:
            why = _kill_reason(w)
            if why is not None:
                busy.add(cid)
                try:
                    await _kill(ports, supervisor, w, *why)
                finally:
                    busy.discard(cid)
            continue
        if not w.restarting:  # finished, held or released: the policy starts it no more
            continue
        now = trio.current_time()
        if w.restart_at is None:
            w.restart_delay = w.backoff.next_delay(w.exited_at - w.started_at)
            w.restart_at = w.exited_at + w.restart_delay
        if w.restart_at > now:
            next_due = min(next_due, w.restart_at)
            continue
        busy.add(cid)
        try:
            again = await _restart(ports, supervisor, w)
        finally:
            busy.discard(cid)
        if again is not None:
            next_due = min(next_due, again)
    return None if next_due == math.inf else max(0.0, next_due - trio.current_time())


def _kill_reason(w: Watch) -> tuple[str, str] | None:
    if w.killing:
        return None
    if w.disrupted:
        return "disrupted", w.disrupted
    svc = w.service
    if w.health == "unhealthy" and svc.restart_on_unhealthy and svc.restart.restarts_at_all:
        return "unhealthy", "killing unhealthy container"
    return None


async def _kill(ports: Adapters, supervisor: Supervisor, w: Watch, reason: str,
                message: str) -> None:
    # No event of its own: the `health`/`heal` fact came before, the `restart` (with
    # this reason) follows once the exit is seen.
    w.killing = True
    # Its watcher may still be taking it out of the backends (nft takes a while under
    # load): the kill waits for that, so no new connection reaches a dead process.
    await supervisor.unready(w)
    try:
        await ports.runtime.kill(w.container_id, "SIGKILL")
    except StackdError as err:
        supervisor.report(w, "error", f"kill: {err}")


async def _restart(ports: Adapters, supervisor: Supervisor, w: Watch) -> float | None:
    """Start `w` again (a fresh create of the same id). None, or when to try again."""
    now = trio.current_time()
    w.history.record(now)
    reason = "disrupted" if w.disrupted else "unhealthy" if w.killing else "exit"
    try:
        if reason == "disrupted" or w.container_id != w.desired.id:
            # Made all afresh: what was removed from outside is made again.
            await lifecycle.replace(ports, w.desired, w.container_id)
        else:
            await lifecycle.restart(ports, w.desired)
    except StackdError as err:
        supervisor.report(w, "error", f"restart failed: {err}")
        # Counts as a failed run: the backoff grows from here.
        w.started_at = w.exited_at = trio.current_time()
        w.restart_delay = w.backoff.next_delay(0.0)
        w.restart_at = w.exited_at + w.restart_delay
        return w.restart_at
    w.restarts += 1
    delay = w.restart_delay
    supervisor.restarted(w, w.desired.id)
    supervisor.report(w, "restart", f"restart {w.restarts} after {delay:g}s", reason=reason)
    return None
