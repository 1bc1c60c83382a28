"""The daemon's last loads of each stack source, reused while nothing they read or
looked for on disk has changed.

An `up` of an unchanged stack (the no-op `up`, a resync) loaded and validated every
file again: ~0.2 s for 500 services, most of a no-op `up`. A load is a pure function
of its request (files, directories, environment, stdin) and of what it asked of the
disk (spec/probes.py), so an entry is reused only for the very same request, and
only while every one of its probes answers the same and its configs' and secrets'
files hold the same bytes. A load that failed is never kept: the next one reports
its error afresh.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from stackd.spec.probes import Probes

T = TypeVar("T")

SIZE = 32  # places kept: a host rarely runs more stacks than this from files


class LoadCache(Generic[T]):
    """One entry per place (a stack's files and directories): the request it was
    loaded for (as JSON), the load, and what that load asked. An `up` from the same
    place with another environment replaces the entry rather than adding one, so a
    shell whose variables differ at each call does not fill memory with copies of the
    same large stack. Used from worker threads (a load is blocking I/O): a lock."""

    def __init__(self, size: int = SIZE) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[str, Probes, T]] = OrderedDict()

    def get(self, place: str, request: str, still_same: Callable[[T], bool]) -> T | None:
        """The load kept for `place` if it was for this very `request` and every probe
        and `still_same` (what the probes do not cover) say it would come out the same
        now; else None."""
        with self._lock:
            entry = self._entries.get(place)
        if entry is None or entry[0] != request:
            return None
        _, probes, loaded = entry
        if not (probes.unchanged() and still_same(loaded)):
            return None
        with self._lock:
            if place in self._entries:
                self._entries.move_to_end(place)
        return loaded

    def put(self, place: str, request: str, probes: Probes, loaded: T) -> None:
        with self._lock:
            self._entries[place] = (request, probes, loaded)
            self._entries.move_to_end(place)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
