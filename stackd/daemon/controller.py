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

Terminal or not is decided once, here (`classify`), from the class of the error as it
was raised: the reconciler keeps each step's own exception, and an exception group
from a nursery is unwrapped to the StackdError inside (`typed_error`). Each key has
one outcome record (`KeyStatus.outcome`), which the API serves and apply waits on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

import trio

from stackd.daemon.events import EventBus
from stackd.daemon.metrics import Metrics
from stackd.daemon.workqueue import ExponentialBackoff, ShutDown, WorkQueue
from stackd.errors import RECONCILE_FAILED, SpecError, StackdError, UsageError, disk_full

log = logging.getLogger("stackd.controller")

Reconcile = Callable[[str], Awaitable[float | None]]

TERMINAL = (SpecError, UsageError)

# ok: converged; requeue: converged for now, look again later; retry: failed, retried
# with backoff; terminal: failed, not retried until something enqueues the key again.
OutcomeStatus = Literal["ok", "requeue", "retry", "terminal"]


def classify(exc: BaseException) -> Literal["retry", "terminal"]:
    return "terminal" if isinstance(exc, TERMINAL) else "retry"


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions in a (nested) exception group, or exc itself."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for e in exc.exceptions for leaf in leaves(e)]
    return [exc]


def typed_error(exc: BaseException) -> BaseException:
    """The StackdError inside a nursery's exception group (the first, if several), so
    its class decides terminal-or-retry and its message is what the user reads."""
    found = leaves(exc)
    for leaf in found:
        if isinstance(leaf, StackdError):
            return leaf
    # A full disk met outside the state store (an image pull) is said as one.
    return next(filter(None, map(disk_full, found)), exc)


def told(exc: BaseException) -> str:
    """What a user reads of a reconcile's failure: a StackdError's message; of any
    other, only its kind — its text is Python's (a pydantic dump, a repr), and the
    daemon's log keeps it with the traceback."""
    if isinstance(exc, StackdError):
        return str(exc)
    return (f"an internal error ({type(exc).__name__}) in the daemon; its log "
            "(logs/daemon.log in the state root) has the details")


@dataclass(frozen=True)
class Outcome:
    """How one reconcile of a key ended."""

    status: OutcomeStatus
    generation: int = 0  # the desired generation that reconcile read (0: none)
    error: str = ""
    error_type: str = ""  # the StackdError class name, for the client to raise again
    finished: float = 0.0


@dataclass
class KeyStatus:
    """What the controller last saw of one key; served by the API, read by waiters."""

    reconciles: int = 0
    outcome: Outcome | None = None
    # Set by the reconcile: the desired generation it read, recorded in its outcome.
    reading: int = 0
    last_started: float = 0.0
    # Incremented at the end of every reconcile, so a waiter can tell "one finished
    # after I asked" from "one that began before I asked".
    finished_epoch: int = 0
    changed: trio.Event = field(default_factory=trio.Event)

    @property
    def last_result(self) -> str:
        return self.outcome.status if self.outcome else ""

    @property
    def last_error(self) -> str:
        return self.outcome.error if self.outcome else ""

    @property
    def last_finished(self) -> float:
        return self.outcome.finished if self.outcome else 0.0


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
        # `reading` keeps the generation the last reconcile read: one that finds nothing
        # to read (a stack just removed) must not hide from a waiter that the one
        # before it finished the generation it waits for.
        st.last_started = time.time()
        t0 = trio.current_time()
        outcome = Outcome("ok")
        try:
            requeue_after = await self._reconcile(key)
        except Exception as raised:  # any failure of one stack must not stop the loop
            exc = typed_error(raised)
            status = classify(exc)
            message = told(exc)
            outcome = Outcome(status, error=message, error_type=type(exc).__name__)
            if status == "terminal":
                self.queue.forget(key)
                log.warning("reconcile failed; not retrying",
                            extra={"key": key, "error": message})
                if self.bus:
                    self.bus.emit("error", project=key, message=f"{RECONCILE_FAILED}{message}")
            else:
                delay = self.queue.add_rate_limited(key)
                log.warning("reconcile failed; retrying",
                            exc_info=not isinstance(exc, StackdError),
                            extra={"key": key, "error": message, "retry_in": delay})
                if self.bus:
                    self.bus.emit("error", project=key,
                                  message=f"reconcile failed, retrying in {delay:.1f}s: "
                                  f"{message}")
        else:
            self.queue.forget(key)
            if requeue_after is not None:
                outcome = Outcome("requeue")
                self.queue.add_after(key, requeue_after)
        finally:
            elapsed = trio.current_time() - t0
            st.reconciles += 1
            st.outcome = Outcome(outcome.status, st.reading, outcome.error, outcome.error_type,
                                 time.time())
            st.finished_epoch += 1
            st.changed.set()
            st.changed = trio.Event()
            if self.metrics:
                self.metrics.reconcile_seconds.labels(key, outcome.status).observe(elapsed)
                self.metrics.reconciles.labels(key, outcome.status).inc()
