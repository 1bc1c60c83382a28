"""Stack files → the immutable `Stack` model (read, interpolate, merge, normalise, validate).

Public API (everything else in this package is an implementation stage):

    from stackd.spec import load, LoadOptions, Stack

    stack = load(LoadOptions(
        files=["compose.yaml"],       # -f values, "-" = stdin; None → discover compose.yaml & co.
        project_name=None,            # -p; else $STACKD_PROJECT_NAME, top-level name:, directory
        project_directory=None,       # --project-directory; default: the first file's directory
        env_files=None,               # --env-file (replace .env)
        profiles=None,                # --profile (plus $STACKD_PROFILES, comma-separated)
        services=None,                # named on the command line: their profiles enabled
        environ=None,                 # the shell environment; None → os.environ
    ))
    stack.name, stack.services["web"].depends_on["db"].condition
    stack.location_of(("services", "web", "depends_on", "db"))   # → Location(file, line, col)
    stack.warnings                                                # e.g. unset variables

    load_text(text, file="compose.yaml", project_name="p", environ={}) -> Stack
    ProjectSource.discover(files, project_directory, cwd) -> ProjectSource(files, project_directory)
    Stack.model_validate({...})       # short syntax accepted; no locations

    stackd.spec.render.to_yaml(stack) / to_json(stack)   # what `stackd config` prints

Handy accessors: `Service.replicas` (deploy.replicas, else scale, else 1),
`Service.restart_policy()` → ("on-failure", 3), `Healthcheck.disabled`; durations are
`timedelta`, byte sizes `int`. Every model is frozen and hashable; `x-*` fields sit in
`.extensions`.

Model types live in `stackd.spec.model` (Stack, Service, Port, ServiceVolume, Dependency,
Healthcheck, Deploy, Network, Volume, …). Errors: `stackd.errors.SpecError` (exit 2,
with `.location`) for every mistake a file can hold; `UsageError` when no file is found.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing's, without importing typing
if TYPE_CHECKING:
    from typing import Any

    from stackd.spec.discovery import ProjectSource, normalize_project_name
    from stackd.spec.loader import LoadOptions, load, load_text
    from stackd.spec.model import Service, Stack

# Resolved on first use (PEP 562): importing a light submodule (dotenv, interpolate)
# runs this file, and the loader's pydantic models cost ~0.15 s of a command's start
# (`stackd run IMAGE` reads its --env-file with spec.dotenv).
_WHERE = {
    "LoadOptions": "loader",
    "ProjectSource": "discovery",
    "Service": "model",
    "Stack": "model",
    "load": "loader",
    "load_text": "loader",
    "normalize_project_name": "discovery",
}

__all__ = [
    "LoadOptions",
    "ProjectSource",
    "Service",
    "Stack",
    "load",
    "load_text",
    "normalize_project_name",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'stackd.spec' has no attribute {name!r}")
    return getattr(importlib.import_module(f"stackd.spec.{module}"), name)
