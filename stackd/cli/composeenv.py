"""Compose's environment variables that stand for command-line flags, read as Compose
reads them: COMPOSE_REMOVE_ORPHANS (up's and down's --remove-orphans),
COMPOSE_IGNORE_ORPHANS (no orphan warning), COMPOSE_ENV_FILES (--env-file).
COMPOSE_FILE, COMPOSE_PROJECT_NAME and COMPOSE_PROFILES are the loader's (they may
come from .env too); COMPOSE_ANSI, COMPOSE_PROGRESS and COMPOSE_PARALLEL_LIMIT are read
where their flags are."""

from __future__ import annotations

import os

# Go's strconv.ParseBool, which Compose uses for these.
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def flag(name: str) -> bool:
    """The variable as a boolean; unset or empty is false, anything else a UsageError."""
    value = os.environ.get(name, "")
    if value in _TRUE:
        return True
    if value in _FALSE or value == "":
        return False
    from stackd.errors import UsageError

    raise UsageError(f"{name}={value!r} is not a boolean", hint="set it to true or false")


def go_bool(text: str) -> bool:
    """A flag's `=value` as Compose's (Go's) boolean flags take it: `--orphans=false`."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    import argparse

    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean (true or false)")


def env_files() -> list[str] | None:
    """COMPOSE_ENV_FILES: comma-separated env files, as --env-file gives them."""
    files = [f for f in os.environ.get("COMPOSE_ENV_FILES", "").split(",") if f.strip()]
    return files or None
