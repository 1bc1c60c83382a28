"""Say a repeated complaint once, then how often it came: what keeps a log bounded when
the same failure recurs many times a second (a full disk under a restart loop).

Pure bookkeeping on a clock the caller may give; no I/O.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

WINDOW = 60.0  # seconds between two lines about the same complaint
MAX_KEYS = 256  # distinct complaints remembered; the oldest is forgotten first


class Repeats:
    def __init__(self, window: float = WINDOW,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        # key → (when it was last said, how often it came since)
        self._seen: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def admit(self, key: str) -> int | None:
        """None: stay silent about `key` now. Else say it, adding that it came that many
        more times since it was last said (0 the first time)."""
        now = self.clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.window:
            self._seen[key] = (seen[0], seen[1] + 1)
            return None
        self._seen[key] = (now, 0)
        self._seen.move_to_end(key)
        while len(self._seen) > MAX_KEYS:
            self._seen.popitem(last=False)
        return seen[1] if seen is not None else 0


def with_count(message: str, repeated: int) -> str:
    return f"{message} (and {repeated} more time(s) since it was last said)" \
        if repeated else message
