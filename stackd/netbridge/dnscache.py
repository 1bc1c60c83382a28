"""Answers in wire format, remembered per (source address, query) until records change.

The resolver's hot path: a query whose bytes after the ID (flags, counts, question,
additional section) came from the same source before is answered by joining its ID
with the reply made then, without parsing or looking anything up. The reply is a pure
function of those bytes, the source and the records, so an entry is exact; what
changes between two equal queries is only which replica comes first, so an entry
holds the reply for each rotation and the records' turn picks one, as a lookup
would. Every change to the records (`Records.generation`) or a new records object
empties the cache, so an answer never outlives the records it came from.
"""

from __future__ import annotations

from dataclasses import dataclass

from stackd.netbridge.dnswire import build_reply

MAX_ENTRIES = 4096  # distinct (source, query) pairs; a flood of unique ones just misses


@dataclass(frozen=True, slots=True)
class Cached:
    """The reply tails (all but the ID) of one query, one per rotation of its addresses;
    `name` is the rotation's key in `Records` (only used when there are several)."""

    name: str
    tails: tuple[bytes, ...]


NOT_OURS = Cached("", ())  # a name the source may not see: forwarded upstream


def reply_tails(query: bytes, question_end: int, name: str, ips: list[str],
                answer_a: bool) -> Cached:
    """Every rotation of `ips` answered to `query` (A records only when `answer_a`)."""
    if not answer_a or len(ips) <= 1:
        return Cached(name, (build_reply(query, question_end, ips if answer_a else [])[2:],))
    return Cached(name, tuple(build_reply(query, question_end, ips[k:] + ips[:k])[2:]
                              for k in range(len(ips))))


class AnswerCache:
    """Remembered answers of one records object at one generation."""

    def __init__(self) -> None:
        self._entries: dict[tuple[int, bytes], Cached] = {}
        self._owner: object = None
        self._generation = -1

    def entries_for(self, owner: object, generation: int) -> dict[tuple[int, bytes], Cached]:
        """The entries valid for `owner` at `generation` (emptied when either moved on)."""
        if owner is not self._owner or generation != self._generation:
            self._entries = {}
            self._owner = owner
            self._generation = generation
        elif len(self._entries) >= MAX_ENTRIES:
            self._entries = {}
        return self._entries
