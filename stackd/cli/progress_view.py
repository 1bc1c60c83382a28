"""The live display of an apply: one line per resource with its state and elapsed time.

On a terminal it redraws in place (rich.live); otherwise every change is one plain
line, so logs and CI output read top to bottom — or, as `--progress` says (display.py),
one JSON object per change, or nothing but the notes (errors, warnings).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

from stackd.cli import display

STATE_STYLE = {"done": "green", "failed": "red", "skipped": "yellow", "working": "cyan",
               "waiting": "magenta"}


class ProgressView:
    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.mode = display.progress(self.stream) if live is None else \
            "tty" if live else "plain"
        self.live = self.mode == "tty"
        self.rows: dict[str, tuple[str, str, float]] = {}
        self._live: Any = None
        self._t0 = time.monotonic()

    def __enter__(self) -> ProgressView:
        if self.live:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(self._render(),
                              console=Console(file=self.stream, force_terminal=True,
                                              no_color=not display.color(self.stream)),
                              refresh_per_second=8, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(None, None, None)

    def update(self, resource: str, state: str, message: str, elapsed: float) -> None:
        self.rows[resource] = (state, message, elapsed)
        if self._live is not None:
            self._live.update(self._render())
        elif self.mode == "json":
            print(json.dumps({"resource": resource, "state": state, "message": message,
                              "elapsed": round(elapsed, 3)}), file=self.stream, flush=True)
        elif self.mode == "plain":
            print(f"{resource:<28} {state:<8} {elapsed:6.1f}s  {message}", file=self.stream,
                  flush=True)

    def note(self, text: str) -> None:
        if self._live is not None:
            self._live.console.print(text, markup=False, highlight=False)
        elif self.mode == "json":
            print(json.dumps({"note": text}), file=self.stream, flush=True)
        else:  # quiet too: what went wrong is always said
            print(text, file=self.stream, flush=True)

    def _render(self) -> Any:
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        for resource, (state, message, elapsed) in self.rows.items():
            style = STATE_STYLE.get(state, "")
            table.add_row(resource, f"[{style}]{state}[/]" if style else state,
                          f"{elapsed:5.1f}s", message if state != "done" else "")
        return table


class HeldErrors:
    """The daemon's "error" events of a reconcile that failed for good, held until the
    request's own end names its error: said there once, not twice (which of the two
    arrives first is a race); any other is noted then."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def hold(self, event: dict[str, Any]) -> bool:
        from stackd.errors import RECONCILE_FAILED

        if event["type"] == "error" and str(event["message"]).startswith(RECONCILE_FAILED):
            self.messages.append(str(event["message"]))
            return True
        return False

    def flush(self, view: ProgressView, error: str | None) -> None:
        """At the request's end: `error` its own (None: it succeeded)."""
        from stackd.errors import RECONCILE_FAILED

        for message in self.messages:
            if error is None or message != f"{RECONCILE_FAILED}{error}":
                view.note(f"error: {message}")
        self.messages.clear()
