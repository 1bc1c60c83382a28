"""Which stack a command means: the global options (-f, -p, --project-directory,
--env-file, --profile) as the daemon's StackSource, and the project name."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse
    from types import SimpleNamespace


def source_from_args(args: argparse.Namespace, targeted: list[str] | None = None
                     ) -> dict[str, Any]:
    """The StackSource body for the API; the daemon reads the files (same host).
    Against another node (--host tcp://) its files are not there: the stack is loaded
    here and sent resolved, as `stackd config` prints it.

    targeted: the services the command names, whose profiles are enabled with them."""
    from stackd.cli import remote

    if remote.is_remote():
        return _resolved_source(args, targeted)
    files = getattr(args, "files", None)
    content = None
    if files and "-" in files:
        content = sys.stdin.read()
    return {
        "files": list(files) if files else None,
        "content": content,
        "cwd": os.getcwd(),
        "project_name": getattr(args, "project_name", None),
        "project_directory": getattr(args, "project_directory", None),
        "env_files": getattr(args, "env_files", None),
        "profiles": getattr(args, "profiles", None),
        "services": list(targeted) if targeted else None,
        "environ": dict(os.environ),
    }


def _resolved_source(args: argparse.Namespace, targeted: list[str] | None
                     ) -> dict[str, Any]:
    from stackd.cli.main import load_stack
    from stackd.spec.render import to_yaml

    stack = load_stack(args, targeted=targeted)
    return {"files": ["-"], "content": to_yaml(stack), "cwd": "/",
            "project_name": stack.name, "project_directory": None, "env_files": None,
            "profiles": getattr(args, "profiles", None), "environ": {}}


def project_of(args: argparse.Namespace | SimpleNamespace) -> str:
    """-p if given, else the name the stack files give (read here, as compose does)."""
    if getattr(args, "project_name", None):
        # Compose's rule, as stackd.spec.discovery.normalize_project_name has it: that
        # module's package imports the whole loader, a quarter second of start-up.
        return _normalize(str(args.project_name))
    quick = quick_project_name(args)
    if quick is not None:
        return quick
    from stackd.errors import UsageError
    from stackd.spec import LoadOptions, load

    try:
        stack = load(LoadOptions(
            files=getattr(args, "files", None),
            project_directory=getattr(args, "project_directory", None),
            env_files=getattr(args, "env_files", None),
            profiles=getattr(args, "profiles", None),
            on_warning=lambda _w: None))
    except UsageError as err:
        verb = _CONTAINER_FORMS.get(getattr(args, "verb", ""))
        if verb is None or not err.message.startswith("no stack file found"):
            raise
        # A Docker user's `stackd stop web` after `stackd run --name web`: the verbs
        # here are a stack's; a single container's are `stackd container …`.
        raise UsageError(err.message, hint=f"{err.hint}; for a container `stackd run` "
                         f"made, `stackd container {verb}`") from None
    return stack.name


# A stack's verb → its form for a single container (`stackd container …`).
_CONTAINER_FORMS = {"ps": "ls -a", "logs": "logs NAME", "start": "start NAME",
                    "stop": "stop NAME", "kill": "kill NAME", "rm": "rm NAME",
                    "exec": "exec NAME CMD"}


# Kept in step with stackd.spec.discovery, whose package import loads the whole
# validating loader (pydantic and all): half a second `ps` or `logs` need not pay.
_COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
_OVERRIDES = {
    "compose.yaml": ("compose.override.yaml", "compose.override.yml"),
    "compose.yml": ("compose.override.yml", "compose.override.yaml"),
    "docker-compose.yaml": ("docker-compose.override.yaml", "docker-compose.override.yml"),
    "docker-compose.yml": ("docker-compose.override.yml", "docker-compose.override.yaml"),
}
# What may name the project or its files other than -f/-p (spec/loader.py,
# spec/discovery.py): with any set, the full loader decides.
_NAMING_VARIABLES = ("STACKD_PROJECT_NAME", "COMPOSE_PROJECT_NAME", "STACKD_FILE",
                     "COMPOSE_FILE")
_SIMPLE_NAME = re.compile(r"""^name:[ \t]*(["']?)([A-Za-z0-9_.-]+)\1[ \t]*(?:#.*)?$""", re.M)
_ANY_NAME = re.compile(r"^name[ \t]*:", re.M)
_TRICKY = re.compile(r"^(?:<<[ \t]*:|\{|---[ \t]*\S)", re.M)


def quick_project_name(args: argparse.Namespace | SimpleNamespace) -> str | None:
    """The project name without the validating loader, as compose finds it: the last
    stack file's plain top-level `name:`, else the project directory's name.

    None (ask the full loader) whenever the cheap reading could differ from it: stdin,
    $STACKD_PROJECT_NAME or a .env/--env-file that might set it, a `name:` with
    interpolation or quoting beyond the plain, top-level merge keys or flow style.
    """
    if any(os.environ.get(v) for v in _NAMING_VARIABLES) or getattr(args, "env_files", None):
        return None
    try:
        return _quick_name(args)
    except OSError:  # a name too long, a loop: the loader says what is wrong with it
        return None


# A stack file larger than this is the loader's to refuse; /dev/zero is never read here.
_QUICK_MAX = 1 << 20


def _quick_name(args: argparse.Namespace | SimpleNamespace) -> str | None:
    files = getattr(args, "files", None)
    given_dir = getattr(args, "project_directory", None)
    cwd = Path.cwd()
    if files:
        if "-" in files:
            return None
        paths = [cwd / f for f in files]
        directory = cwd / given_dir if given_dir else paths[0].parent
    else:
        found = _discover(cwd / given_dir if given_dir else cwd)
        if found is None:
            return None
        paths, directory = found
        directory = cwd / given_dir if given_dir else directory
    if (directory / ".env").exists():
        return None
    name = None
    for path in paths:
        if not path.is_file():  # a device, a pipe: the loader's
            return None
        try:
            with path.open("rb") as f:
                data = f.read(_QUICK_MAX + 1)
            text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError):
            return None  # the loader says what is wrong with it
        if len(data) > _QUICK_MAX:
            return None
        if _TRICKY.search(text):
            return None
        if _ANY_NAME.search(text):
            simple = _SIMPLE_NAME.findall(text)
            if len(simple) != 1:
                return None
            name = simple[0][1]
    if name is None:
        name = directory.resolve().name or "default"
    normalized = _normalize(name)
    return normalized or None


def _discover(search: Path) -> tuple[list[Path], Path] | None:
    for directory in (search, *search.parents):
        for name in _COMPOSE_FILES:
            candidate = directory / name
            if candidate.is_file():
                chosen = [candidate]
                for over in _OVERRIDES[name]:
                    if (directory / over).is_file():
                        chosen.append(directory / over)
                        break
                return chosen, directory
    return None


def _normalize(name: str) -> str:
    """Compose's rule, as stackd.spec.discovery.normalize_project_name has it."""
    return re.sub(r"[^a-z0-9_-]+", "", name.lower()).lstrip("_-")
