"""A level-triggered controller: one work queue of stack keys, workers that reconcile them.

Kubernetes' model (sample-controller, controller-runtime): anything that may have
changed a stack — an apply, a container exit, a health transition, a deleted bridge,
the periodic resync — only enqueues the stack's key. A worker takes the key and calls
`reconcile(key)`, which re-reads desired and actual state from scratch; it never acts
on what the event said. The queue guarantees one reconcile at a time per key.

Outcome of a reconcile:
- returns None: converged; the key's backoff is forgotten.
- returns a number: converged for now, look again after that many seconds (waiting
  for a health check, a restart delay).
- raises a terminal error (the stack itself is wrong: SpecError, UsageError): reported
  once as an `error` event and not retried until something enqueues the key again.
- raises anything else: retried with per-key exponential backoff (100 ms doubling to 30 s).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

from stackd.daemon.events import EventBus
from stackd.daemon.metrics import Metrics
from stackd.daemon.workqueue import ExponentialBackoff, ShutDown, WorkQueue
from stackd.errors import SpecError, StackdError, UsageError

log = logging.getLogger("stackd.controller")

Reconcile = Callable[[str], Awaitable[float | None]]

TERMINAL = (SpecError, UsageError)


@dataclass
class KeyStatus:
    """What the controller last saw of one key; served by the API, read by waiters."""

    reconciles: int = 0
    last_result: str = ""  # "ok", "requeue", "error", "terminal"
    last_error: str = ""
    last_started: float = 0.0
    last_finished: float = 0.0
    # Incremented at the end of every reconcile, so a waiter can tell "one finished
    # after I asked" from "one that began before I asked".
    finished_epoch: int = 0
    changed: trio.Event = field(default_factory=trio.Event)


class Controller:
    def __init__(self, reconcile: Reconcile, *, bus: EventBus | None = None,
                 metrics: Metrics | None = None, workers: int = 4,
                 resync_period: float = 30.0,
                 backoff: ExponentialBackoff | None = None,
                 keys: Callable[[], list[str]] = list) -> None:
        self._reconcile = reconcile
        self.bus = bus
        self.metrics = metrics
        self.workers = workers
        self.resync_period = resync_period
        self.queue: WorkQueue[str] = WorkQueue(backoff or ExponentialBackoff(0.1, 30.0))
        self._keys = keys
        self.status: dict[str, KeyStatus] = {}

    def enqueue(self, key: str) -> None:
        self.queue.add(key)
        if self.metrics:
            self.metrics.queue_depth.set(len(self.queue))

    def key_status(self, key: str) -> KeyStatus:
        return self.status.setdefault(key, KeyStatus())

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.queue.run_delayed)
            nursery.start_soon(self._resync_loop)
            for i in range(self.workers):
                nursery.start_soon(self._worker, i)
            task_status.started()

    def shut_down(self) -> None:
        self.queue.shut_down()

    async def _resync_loop(self) -> None:
        while True:
            for key in self._keys():
                self.enqueue(key)
            await trio.sleep(self.resync_period)

    async def _worker(self, n: int) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            try:
                await self._process(key)
            finally:
                self.queue.done(key)
                if self.metrics:
                    self.metrics.queue_depth.set(len(self.queue))

    async def _process(self, key: str) -> None:
        st = self.key_status(key)
        st.last_started = time.time()
        t0 = trio.current_time()
        result = "ok"
        try:
            requeue_after = await self._reconcile(key)
        except TERMINAL as exc:
            result = "terminal"
            st.last_error = str(exc)
            self.queue.forget(key)
            log.warning("reconcile failed; not retrying", extra={"key": key, "error": str(exc)})
            if self.bus:
                self.bus.emit("error", project=key, message=f"reconcile failed: {exc}")
        except Exception as exc:  # any failure of one stack must not stop the loop
            result = "error"
            st.last_error = str(exc) if isinstance(exc, StackdError) else repr(exc)
            delay = self.queue.add_rate_limited(key)
            log.warning("reconcile failed; retrying", exc_info=not isinstance(exc, StackdError),
                        extra={"key": key, "error": st.last_error, "retry_in": delay})
            if self.bus:
                self.bus.emit("error", project=key,
                              message=f"reconcile failed, retrying in {delay:.1f}s: "
                              f"{st.last_error}")
        else:
            st.last_error = ""
            self.queue.forget(key)
            if requeue_after is not None:
                result = "requeue"
                self.queue.add_after(key, requeue_after)
        finally:
            elapsed = trio.current_time() - t0
            st.reconciles += 1
            st.last_result = result
            st.last_finished = time.time()
            st.finished_epoch += 1
            st.changed.set()
            st.changed = trio.Event()
            if self.metrics:
                self.metrics.reconcile_seconds.labels(key, result).observe(elapsed)
                self.metrics.reconciles.labels(key, result).inc()
