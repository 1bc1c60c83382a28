"""The restart policy of `stackd run --restart …` containers, which belong to no stack.

The daemon is their one writer, as a stack's reconcile is of its containers: one trio
task per supervised container waits for its exit, asks the policy
(`reconciler.restart.should_restart`, the same rules and backoff as a service's) and
starts it again. The policy is the container's label `io.stackd.restart`, so a
restarted daemon finds every such container again (`adopt`): a running one is watched,
one that exited while no daemon ran is restarted now. A user's `container stop`/`rm`
releases it first (then it stays stopped, also across a daemon restart, for `always`
as for `unless-stopped`); `container start` watches it again. Restart counts
(`on-failure:N`) live in the daemon: a restarted daemon counts afresh.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from stackd.errors import NotFoundError, StackdError
from stackd.reconciler import lifecycle
from stackd.reconciler.restart import Backoff, RestartPolicy, parse_restart, should_restart

LABEL_RESTART = "io.stackd.restart"

Emit = Callable[[str, str, str], None]  # (event type, container name, message)


class SingleSupervisor:
    def __init__(self, ports: Any, nursery: trio.Nursery, emit: Emit | None = None) -> None:
        self._ports = ports
        self._nursery = nursery
        self._emit = emit
        self._scopes: dict[str, trio.CancelScope] = {}

    async def adopt(self) -> None:
        """Watch every container of no stack that carries a restart policy and is not
        held (stopped by a user)."""
        held = set(self._ports.state.held(""))
        for v in await self._ports.runtime.list():
            if LABEL_RESTART in v.labels and v.id not in held and v.status != "created":
                self.watch(v.id, v.name, v.labels[LABEL_RESTART])

    def watch(self, cid: str, name: str, policy: str) -> None:
        if cid in self._scopes:
            return
        scope = trio.CancelScope()
        self._scopes[cid] = scope
        self._nursery.start_soon(self._run, cid, name, parse_restart(policy), scope)

    def release(self, cid: str) -> None:
        """A user's stop or rm: what follows the exit is not the policy's."""
        scope = self._scopes.pop(cid, None)
        if scope is not None:
            scope.cancel()

    async def _run(self, cid: str, name: str, policy: RestartPolicy,
                   scope: trio.CancelScope) -> None:
        backoff, restarts = Backoff(), 0
        with scope:
            try:
                while True:
                    started = trio.current_time()
                    status = await self._ports.runtime.wait(cid)
                    if not should_restart(policy, status.code, stopped_by_user=False,
                                          attempts=restarts):
                        self._note("die", name, f"exited (code {status.code}); "
                                   f"restart policy {policy.name}: not restarted")
                        return
                    await trio.sleep(backoff.next_delay(trio.current_time() - started))
                    await lifecycle.start_existing(self._ports, cid)
                    restarts += 1
                    self._note("restart", name, f"restarted after exit code {status.code} "
                               f"(restart policy {policy.name}, restart {restarts})")
            except NotFoundError:
                pass  # removed meanwhile
            except StackdError as err:
                self._note("error", name, f"restart policy: {err}")
            finally:
                if self._scopes.get(cid) is scope:
                    del self._scopes[cid]

    def _note(self, kind: str, name: str, message: str) -> None:
        if self._emit is not None:
            self._emit(kind, name, message)
