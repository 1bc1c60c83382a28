"""When an attached `up` ends by itself: as Compose's, once every container it watches
has exited for good (its restart policy will not start it again). It watches the
services named on the command line, else those whose logs it follows; so
`up tests` returns when the test suite has run, leaving what it depends on running,
and a stack of servers is followed until Ctrl-C."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

POLL = 0.2  # s between looks at the stack's containers, at least
# A look costs the daemon a listing of the stack (~70 ms at 500 containers): the next
# comes after this many times as long, so following a big stack keeps it ~10% busy.
PACE = 10
DRAIN = 0.5  # s the log follower is given to print what the last containers wrote


def all_ended(rows: Iterable[Mapping[str, Any]], services: Iterable[str] | None) -> bool:
    """Whether every container of `services` (every service's when None) has exited
    for good; one-off (`run`) containers are not watched. Pure."""
    wanted = set(services) if services is not None else None
    return all(row.get("ended", row.get("state") == "exited" and not row.get("restarting"))
               for row in rows
               if not row.get("oneoff") and (wanted is None or row.get("service") in wanted))


def exits(rows: Iterable[Mapping[str, Any]], told: set[tuple[str, Any]]) -> list[str]:
    """Compose's "NAME exited with code N" for each run not told of yet (`told`: the
    (id, start) of those that were, updated). Pure but for `told`."""
    lines = []
    for row in rows:
        run = (str(row.get("id")), row.get("started_at"))
        if row.get("state") == "exited" and row.get("exit_code") is not None \
                and not row.get("oneoff") and run not in told:
            told.add(run)
            lines.append(f"{row.get('name')} exited with code {row['exit_code']}")
    return lines


class Quiet:
    """When the follower last printed: the end waits until it has been quiet for
    DRAIN, so a long history still being printed is not cut short."""

    def __init__(self) -> None:
        self.last = time.monotonic()

    def mark(self) -> None:
        self.last = time.monotonic()

    def wait(self, seconds: float) -> None:
        while (left := self.last + seconds - time.monotonic()) > 0:
            time.sleep(left)


def follow_until_ended(client: Any, project: str, services: list[str] | None,
                       follow: Callable[[Callable[[], None]], None]) -> int:
    """Follow the logs (in a thread: their stream blocks; `follow` calls the function
    it is given after each line it prints) until `all_ended`."""
    quiet = Quiet()
    threading.Thread(target=follow, args=(quiet.mark,), daemon=True).start()
    told: set[tuple[str, Any]] = set()
    # An exit is told a look later: the follower reads each log every 0.1 s, and a
    # container's last lines come before the news of its end, as in Compose.
    seen: list[str] = []
    while True:
        rows, took = look(client, project)
        rows = [r for r in rows if services is None or r.get("service") in services]
        _tell(seen)
        seen = exits(rows, told)
        if all_ended(rows, services):
            break
        time.sleep(max(POLL, PACE * took))
    quiet.mark()
    quiet.wait(DRAIN)
    _tell(seen)
    return 0


def look(client: Any, project: str) -> tuple[list[dict[str, Any]], float]:
    """The stack's containers, every state, and how long the daemon took to list them."""
    t0 = time.monotonic()
    rows = client.get("/v1/containers", project=project, all=True)
    return rows, time.monotonic() - t0


def _tell(lines: list[str]) -> None:
    for line in lines:
        print(line, file=sys.stderr)
