"""Which files make up a project, where it lives and what it is called — as compose does it."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from stackd.errors import SpecError, UsageError
from stackd.spec.probes import Probes

COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
OVERRIDE_FILES = {
    "compose.yaml": ("compose.override.yaml", "compose.override.yml"),
    "compose.yml": ("compose.override.yml", "compose.override.yaml"),
    "docker-compose.yaml": ("docker-compose.override.yaml", "docker-compose.override.yml"),
    "docker-compose.yml": ("docker-compose.override.yml", "docker-compose.override.yaml"),
}
STDIN = "-"
# The stack files when no -f is given: stackd's name first, then Compose's, from the
# environment or else the project's env file (.env, or --env-file), as Compose reads it.
FILE_VARIABLES = ("STACKD_FILE", "COMPOSE_FILE")
SEPARATOR_VARIABLE = "COMPOSE_PATH_SEPARATOR"


@dataclass(frozen=True)
class ProjectSource:
    """The stack files of a project (in merge order) and its project directory.

    `files` are absolute paths, or "-" for standard input.
    """

    files: tuple[str, ...]
    project_directory: Path

    @classmethod
    def discover(cls, files: Sequence[str] | None = None,
                 project_directory: str | Path | None = None,
                 cwd: str | Path | None = None, *,
                 probes: Probes | None = None, environ: Mapping[str, str] | None = None,
                 env_files: Sequence[str] | None = None) -> ProjectSource:
        """`-f` files as given; else those $STACKD_FILE or $COMPOSE_FILE names (in the
        environment, or in the project's env file: `.env`, or the --env-file files),
        separated by $COMPOSE_PATH_SEPARATOR (default ':'); else compose.yaml & co. in
        the working directory or its parents, plus the override file beside it when
        there is one. `probes` keeps what was looked at (every other file it looked
        for, too)."""
        probes = probes or Probes()
        base = Path(cwd) if cwd is not None else probes.cwd()
        if project_directory is not None:
            project_directory = probes.resolve(base / project_directory)
            if not probes.is_dir(project_directory):
                raise UsageError(f"project directory {str(project_directory)!r} does not exist")
        if not files:
            files = _files_from_variables(environ or {}, Path(project_directory or base),
                                          base, env_files, probes)
        if files:
            found = tuple(f if f == STDIN else str((base / f).absolute()) for f in files)
            for f in found:
                if f != STDIN and not probes.is_file(f):
                    what = ("is a directory" if probes.is_dir(f) else
                            "is not a regular file (a device, a pipe)" if os.path.exists(f)
                            else "does not exist")
                    raise UsageError(f"stack file {f!r} {what}",
                                     hint="check the -f/--file path; -f - reads stdin")
            first = found[0]
            default_dir = base if first == STDIN else Path(first).parent
            return cls(found, Path(project_directory or default_dir))
        search = Path(project_directory) if project_directory is not None else base
        for directory in (search, *search.parents):
            for name in COMPOSE_FILES:
                candidate = directory / name
                if probes.is_file(candidate):
                    chosen = [str(candidate.absolute())]
                    for over in OVERRIDE_FILES[name]:
                        if probes.is_file(directory / over):
                            chosen.append(str((directory / over).absolute()))
                            break
                    return cls(tuple(chosen), Path(project_directory or directory))
        raise UsageError(
            f"no stack file found in {str(search)!r} or its parents",
            hint=f"create {COMPOSE_FILES[0]} or pass one with -f FILE")


def _files_from_variables(environ: Mapping[str, str], directory: Path, base: Path,
                          env_files: Sequence[str] | None, probes: Probes) -> list[str]:
    """$STACKD_FILE / $COMPOSE_FILE's files (relative ones from the working directory),
    from the environment, else from the project's env file."""
    from stackd.spec.dotenv import parse_dotenv

    values: Mapping[str, str] = environ
    if not any(environ.get(v) for v in FILE_VARIABLES):
        paths = [base / f for f in env_files] if env_files else [directory / ".env"]
        values = {}
        for path in paths:
            try:
                text = probes.read_text(path)
            except (OSError, UnicodeDecodeError):
                continue  # the loader reads it again, and says what is wrong
            try:
                values = {**values, **parse_dotenv(text, str(path), {**environ, **values})}
            except SpecError:
                continue
        values = {**values, **environ}
    value = next((values[v] for v in FILE_VARIABLES if values.get(v)), "")
    separator = values.get(SEPARATOR_VARIABLE) or ":"
    return [f for f in value.split(separator) if f]


def normalize_project_name(name: str) -> str:
    """Compose's rule: lower case, keep only a-z 0-9 _ -, no leading _ or -."""
    return re.sub(r"[^a-z0-9_-]+", "", name.lower()).lstrip("_-")


def check_project_name(name: str, origin: str) -> str:
    normalized = normalize_project_name(name)
    if not normalized:
        raise SpecError(
            f"project name {name!r} (from {origin}) has no letters or digits left after "
            "normalising", hint="set one with -p NAME or a top-level name:")
    return normalized
