"""`up --abort-on-container-exit`, `--abort-on-container-failure`, `--exit-code-from`:
Compose's way to run a stack as one job (a test suite beside its database). The logs
are followed as by a plain `up`; the first container of the stack to exit since the
`up` stops them all, and `up` exits with that container's code, or with the code of
the service `--exit-code-from` names once it has stopped too."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stackd.cli.followed import DRAIN, PACE, POLL, Quiet, look


@dataclass(frozen=True, slots=True)
class Abort:
    on_failure_only: bool  # --abort-on-container-failure
    code_from: str | None  # --exit-code-from SERVICE


def first_exit(rows: list[dict[str, Any]], since: float, seen_running: set[str],
               abort: Abort) -> dict[str, Any] | None:
    """The row of the container that ends the run, if one has: exited, and either
    seen running by this `up` or started since it began (a one-shot done before it
    does not count); with on_failure_only, with a code other than 0. One-off (`run`)
    containers never do. No I/O; it records this look's running ids in `seen_running`
    for the next."""
    seen_running |= {r["id"] for r in rows if r["state"] == "running"}
    # An exited row without a code yet: its process is gone and the monitor has not
    # recorded how (a lost exit is recorded too, as 255). Taken for a 0, it ended an
    # --abort-on-container-failure run with code 0 (CI saw it under load).
    done = [r for r in rows if r["state"] == "exited" and not r.get("oneoff")
            and r.get("exit_code") is not None
            and (r["id"] in seen_running or (r.get("started_at") or 0) >= since)
            and not (abort.on_failure_only and r.get("exit_code") == 0)]
    return min(done, key=lambda r: r.get("started_at") or 0, default=None)


def exit_code(rows: list[dict[str, Any]], service: str) -> int | None:
    """The code of `service`'s first replica once it has exited; None while it runs."""
    mine = sorted((r for r in rows if r["service"] == service and not r.get("oneoff")),
                  key=lambda r: r.get("index") or 0)
    if not mine or mine[0]["state"] != "exited" or mine[0].get("exit_code") is None:
        return None
    return int(mine[0]["exit_code"])


def follow_until_exit(client: Any, project: str, services: list[str] | None, since: float,
                      abort: Abort, follow: Callable[[Callable[[], None]], None],
                      stop: Callable[[], None]) -> int:
    """Follow the logs (in a thread: their stream blocks; `follow` calls the function
    it is given after each line) until a container ends the run; then stop the stack
    (as Ctrl-C does) and return the code Compose would."""
    quiet = Quiet()
    threading.Thread(target=follow, args=(quiet.mark,), daemon=True).start()
    seen: set[str] = set()
    while True:
        rows, took = look(client, project)
        if services:
            rows = [r for r in rows if r["service"] in services]
        ended = first_exit(rows, since, seen, abort)
        if ended is not None:
            break
        time.sleep(max(POLL, PACE * took))
    code = int(ended["exit_code"])
    print(f"{ended['name']} exited with code {code}\nAborting on container exit…",
          file=sys.stderr)
    stop()
    if abort.code_from is not None:
        while (code_from := exit_code(client.get("/v1/containers", project=project,
                                                 all=True), abort.code_from)) is None:
            time.sleep(POLL)  # stopped by the stop above; its row says so within moments
        code = code_from
    # The follower reads each log every 0.1 s: what the last containers wrote before
    # they stopped is printed before we go (CI saw a test suite's last lines lost).
    quiet.mark()
    quiet.wait(DRAIN)
    return code
