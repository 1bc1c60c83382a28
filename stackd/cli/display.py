"""How this process's output looks: Compose's `--ansi` and `--progress`, set once per
command (the global options, else $COMPOSE_ANSI / $COMPOSE_PROGRESS; NO_COLOR turns
colours off), and
asked by whatever prints colours or redraws lines. Scripts and CI set them so that a
log reads top to bottom with no escape codes.

- ansi: `auto` (colours and redrawing on a terminal), `never` (no escape code at all:
  progress is plain lines, as Compose's), `always` (colours even into a pipe).
- progress: `auto` (a live view on a terminal, else plain), `tty` (the live view even
  into a pipe), `plain` (one line per change), `json` (one JSON object per change, for
  a program to read), `quiet` (none; errors are still said).
"""

from __future__ import annotations

import os
from typing import TextIO

ANSI = ("auto", "never", "always")
PROGRESS = ("auto", "tty", "plain", "json", "quiet")

_ansi = "auto"
_progress = "auto"
_no_color = False


def configure(ansi: str | None = None, progress: str | None = None,
              environ: dict[str, str] | os._Environ[str] | None = None) -> None:
    """The flags if given, else the environment's. Raises UsageError naming a value
    that is not one of the choices."""
    from stackd.errors import UsageError

    global _ansi, _progress, _no_color
    env = os.environ if environ is None else environ
    _no_color = bool(env.get("NO_COLOR"))  # no-color.org: colours off, nothing else
    chosen_ansi = ansi or env.get("COMPOSE_ANSI") or "auto"
    chosen_progress = progress or env.get("COMPOSE_PROGRESS") or "auto"
    for what, value, choices in (("ansi", chosen_ansi, ANSI),
                                 ("progress", chosen_progress, PROGRESS)):
        if value not in choices:
            raise UsageError(f"--{what} {value!r} is not one of {', '.join(choices)}",
                             hint=f"e.g. --{what} {choices[1]}")
    _ansi, _progress = chosen_ansi, chosen_progress


def color(stream: TextIO) -> bool:
    """Whether to colour what goes to `stream`."""
    if _ansi == "never":
        return False
    return _ansi == "always" or (stream.isatty() and not _no_color)


def progress(stream: TextIO) -> str:
    """How to show progress on `stream`: tty (redrawn in place), plain, json or quiet."""
    if _progress == "auto":
        return "tty" if stream.isatty() and _ansi != "never" else "plain"
    if _progress == "tty" and _ansi == "never":
        return "plain"  # redrawing is escape codes too
    return _progress
