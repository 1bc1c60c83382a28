"""Compose's --ansi and --progress: what each asks of a terminal and of a pipe, and the
progress view's lines in each mode."""

from __future__ import annotations

import io
import json

import pytest

from stackd.cli import display
from stackd.cli.progress_view import ProgressView
from stackd.errors import UsageError


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore():  # type: ignore[no-untyped-def]
    yield
    display.configure(environ={})


@pytest.mark.parametrize(("ansi", "progress", "env", "tty", "pipe", "colour"), [
    (None, None, {}, "tty", "plain", (True, False)),
    ("never", None, {}, "plain", "plain", (False, False)),  # Compose: plain progress
    ("always", None, {}, "tty", "plain", (True, True)),
    (None, "plain", {}, "plain", "plain", (True, False)),
    (None, "tty", {}, "tty", "tty", (True, False)),
    ("never", "tty", {}, "plain", "plain", (False, False)),  # redrawing is escapes too
    (None, "json", {}, "json", "json", (True, False)),
    (None, "quiet", {}, "quiet", "quiet", (True, False)),
    (None, None, {"COMPOSE_PROGRESS": "quiet", "COMPOSE_ANSI": "never"}, "quiet", "quiet",
     (False, False)),
    ("always", "plain", {"COMPOSE_PROGRESS": "quiet", "COMPOSE_ANSI": "never"}, "plain",
     "plain", (True, True)),  # a flag beats the environment
    (None, None, {"NO_COLOR": "1"}, "tty", "plain", (False, False)),  # colours only
])
def test_what_each_setting_asks_of_a_terminal_and_a_pipe(
        ansi: str | None, progress: str | None, env: dict[str, str], tty: str, pipe: str,
        colour: tuple[bool, bool]) -> None:
    display.configure(ansi, progress, environ=env)
    assert display.progress(Terminal()) == tty
    assert display.progress(io.StringIO()) == pipe
    assert (display.color(Terminal()), display.color(io.StringIO())) == colour


def test_a_value_from_the_environment_that_is_no_choice_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--progress 'fancy' is not one of auto, tty"):
        display.configure(environ={"COMPOSE_PROGRESS": "fancy"})


@pytest.mark.parametrize("progress", ["plain", "json", "quiet", "tty"])
def test_the_progress_view_in_each_mode(progress: str) -> None:
    display.configure(progress=progress, environ={})
    out = io.StringIO()
    with ProgressView(out) as view:
        view.update("web-1", "working", "web-1: create", 0.0)
        view.update("web-1", "done", "web-1: create", 0.25)
        view.note("stackd: demo: something failed")
    text = out.getvalue()
    if progress == "plain":
        assert text.splitlines() == [
            "web-1                        working     0.0s  web-1: create",
            "web-1                        done        0.2s  web-1: create",
            "stackd: demo: something failed"]
    elif progress == "json":
        assert [json.loads(line) for line in text.splitlines()] == [
            {"resource": "web-1", "state": "working", "message": "web-1: create",
             "elapsed": 0.0},
            {"resource": "web-1", "state": "done", "message": "web-1: create",
             "elapsed": 0.25},
            {"note": "stackd: demo: something failed"}]
    elif progress == "quiet":
        assert text == "stackd: demo: something failed\n"  # what failed is still said
    else:  # a live view, redrawn in place: escape codes, into the pipe as asked
        assert "\x1b[" in text and "something failed" in text
