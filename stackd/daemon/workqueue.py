"""A work queue of keys with client-go's guarantees, on trio.

- A key is in the queue at most once however often it is added (dirty set).
- A key being processed is never handed to a second worker; adds during processing
  mark it dirty and it comes back once `done` is called.
- Failures requeue with per-key exponential backoff (`add_rate_limited`), reset by
  `forget` after a success.
- `add_after` delays an add (periodic resync, backoff) without a task per key.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

import trio

K = TypeVar("K", bound=Hashable)


class ShutDown(Exception):
    """The queue was shut down; workers should return."""


class ExponentialBackoff:
    """base · 2^failures, capped: 100 ms, 200 ms, 400 ms … up to `cap`."""

    def __init__(self, base: float = 0.1, cap: float = 30.0) -> None:
        self.base = base
        self.cap = cap
        self._failures: dict[Hashable, int] = {}

    def when(self, key: Hashable) -> float:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        if n > 64:  # 2**n overflows float long before; the cap applies anyway
            return self.cap
        return min(self.base * math.pow(2, n), self.cap)

    def failures(self, key: Hashable) -> int:
        return self._failures.get(key, 0)

    def forget(self, key: Hashable) -> None:
        self._failures.pop(key, None)


class WorkQueue(Generic[K]):
    def __init__(self, backoff: ExponentialBackoff | None = None) -> None:
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._delayed: list[tuple[float, int, K]] = []
        self._delayed_seq = 0
        self._changed = trio.Event()
        self._shutting_down = False
        self.backoff = backoff or ExponentialBackoff()

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def processing(self) -> frozenset[K]:
        return frozenset(self._processing)

    def _poke(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def add(self, key: K) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return
        self._queue.append(key)
        self._poke()

    def add_after(self, key: K, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        self._delayed_seq += 1
        heapq.heappush(self._delayed, (trio.current_time() + delay, self._delayed_seq, key))
        self._poke()

    def add_rate_limited(self, key: K) -> float:
        delay = self.backoff.when(key)
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        self.backoff.forget(key)

    async def get(self) -> K:
        while not self._queue:
            if self._shutting_down:
                raise ShutDown
            changed = self._changed
            await changed.wait()
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._poke()

    def shut_down(self) -> None:
        self._shutting_down = True
        self._poke()

    async def run_delayed(self) -> None:
        """Move delayed keys onto the queue when their time comes; run this in a nursery."""
        while not self._shutting_down:
            now = trio.current_time()
            while self._delayed and self._delayed[0][0] <= now:
                _, _, key = heapq.heappop(self._delayed)
                self.add(key)
            deadline = self._delayed[0][0] if self._delayed else math.inf
            changed = self._changed
            with trio.move_on_at(deadline):
                await changed.wait()
