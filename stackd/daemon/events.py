"""The event bus: what happened to stacks and containers, for `stackd events` and the controller.

Events are facts (a container died, a reconcile applied a plan); nothing acts on an
event's content. The controller only takes the stack key from one and enqueues it,
then re-reads the world (level-triggered, like a Kubernetes informer feeding a
workqueue). A bounded ring keeps the recent past so a client can ask for `--since`.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Literal

import trio
from pydantic import BaseModel, ConfigDict, Field

EventType = Literal[
    "start", "die", "oom", "health", "restart", "create", "remove", "heal",
    "apply", "plan", "progress", "reconcile", "error", "daemon", "rollback", "pause",
    "action",
    "gitops", "drift",
]


ProgressState = Literal["working", "done", "failed", "skipped", "waiting"]
RestartReason = Literal["", "exit", "unhealthy", "disrupted"]


class Event(BaseModel):
    """One schema for the daemon, the API stream and the CLI. Readers decide from the
    typed fields (type, verb, slot, state, reason); `message` is for people only."""

    model_config = ConfigDict(frozen=True)

    seq: int = 0  # assigned by the bus; strictly increasing within one daemon life
    time: float = Field(default_factory=time.time)
    type: EventType
    project: str | None = None
    container: str | None = None  # container name, e.g. webapp-web-1
    service: str | None = None
    message: str = ""
    slot: str = ""  # e.g. web-1
    verb: str = ""  # the plan step's verb: create, recreate, start, stop, remove, kill, rm…
    cause: str = ""  # why the step was planned
    state: ProgressState | None = None  # progress events
    elapsed: float | None = None  # progress events: seconds the step has taken
    reason: RestartReason = ""  # restart events: exit (restart policy), unhealthy, disrupted
    # Who asked for it: an `action` event's (one per state-changing API request), from
    # the request's X-Stackd-Actor header — "cli", or a web console token's name.
    actor: str = ""
    attrs: dict[str, str] = Field(default_factory=dict)


Listener = Callable[[Event], None]


class EventBus:
    """Fan-out of events to any number of subscribers, each with its own bounded buffer.

    A subscriber that falls behind loses its oldest events rather than blocking the
    publisher: the daemon's loop must never wait on a slow `stackd events` reader.
    """

    def __init__(self, history: int = 1000, buffer: int = 1000) -> None:
        self._seq = itertools.count(1)
        self.last_seq = 0  # of the newest event published
        self._history: deque[Event] = deque(maxlen=history)
        self._buffer = buffer
        self._subscribers: set[_Subscription] = set()
        self._listeners: list[Listener] = []

    def listen(self, listener: Listener) -> None:
        """Call `listener(event)` synchronously for every event (the controller's hook)."""
        self._listeners.append(listener)

    def publish(self, event: Event) -> Event:
        event = event.model_copy(update={"seq": next(self._seq)})
        self.last_seq = event.seq
        self._history.append(event)
        for sub in self._subscribers:
            sub.push(event)
        for listener in self._listeners:
            listener(event)
        return event

    def emit(self, type: EventType, *, project: str | None = None,
             container: str | None = None, service: str | None = None,
             message: str = "", slot: str = "", verb: str = "",
             state: ProgressState | None = None, elapsed: float | None = None,
             **attrs: str) -> Event:
        return self.publish(Event(type=type, project=project, container=container,
                                  service=service, message=message, slot=slot, verb=verb,
                                  state=state, elapsed=elapsed, attrs=attrs))

    def history(self, since_seq: int = 0) -> list[Event]:
        return [e for e in self._history if e.seq > since_seq]

    async def subscribe(self, *, since_seq: int | None = None) -> AsyncIterator[Event]:
        """Yield events as they come; with since_seq, first those already past it."""
        sub = _Subscription(self._buffer)
        self._subscribers.add(sub)
        try:
            if since_seq is not None:
                for event in self.history(since_seq):
                    yield event
                    sub.drop_through(event.seq)
            while True:
                yield await sub.next()
        finally:
            self._subscribers.discard(sub)


class _Subscription:
    def __init__(self, size: int) -> None:
        self._queue: deque[Event] = deque(maxlen=size)
        self._wakeup = trio.Event()

    def push(self, event: Event) -> None:
        self._queue.append(event)
        self._wakeup.set()

    def drop_through(self, seq: int) -> None:
        while self._queue and self._queue[0].seq <= seq:
            self._queue.popleft()

    async def next(self) -> Event:
        while not self._queue:
            self._wakeup = trio.Event()
            await self._wakeup.wait()
        return self._queue.popleft()
