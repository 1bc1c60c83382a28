"""Docker's prune question, in one place: asked on a terminal (y or yes goes on); with
no terminal to ask on, the command is refused rather than taken for a yes."""

from __future__ import annotations

import sys

from stackd.errors import UsageError


def confirmed(question: str, *, refusal: str) -> bool:
    """Whether the user said yes to `question`; `refusal`: the error's text when stdin
    is no terminal (the hint names -f)."""
    if not sys.stdin.isatty():
        raise UsageError(refusal, hint="add -f to prune without asking")
    return input(question).strip().lower() in ("y", "yes")
