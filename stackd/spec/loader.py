"""`load()`: the chain of stages from stack files to a `Stack`.

Per file: read YAML with places → interpolate → canonical (long) form → include →
extends. Then: merge the files in order → project name → profiles → env files and
implied defaults → references → model. Each stage is a pure function of its input
(the only reads are the stack files, .env files and env_file files).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stackd.errors import Location, SpecError
from stackd.spec.canonical import canonical_stack, describe, where
from stackd.spec.discovery import STDIN, ProjectSource, check_project_name
from stackd.spec.dotenv import parse_dotenv
from stackd.spec.extends import resolve_extends
from stackd.spec.finalize import (
    add_default_network,
    apply_profiles,
    check_references,
    resolve_environment,
    resolve_label_files,
)
from stackd.spec.interpolate import Variables, VariableUse, interpolate_tree
from stackd.spec.merge import merge, merge_all
from stackd.spec.model import Path as ElementPath
from stackd.spec.model import Stack
from stackd.spec.names import check_names
from stackd.spec.paths import absolutize
from stackd.spec.probes import Probes
from stackd.spec.validate import build_stack
from stackd.spec.yaml_positions import PlacedDict, PlacedList, copy_placed, read_yaml

# stackd's names first, then Compose's (a .env written for Compose sets those).
PROFILES_VARIABLES = ("STACKD_PROFILES", "COMPOSE_PROFILES")
PROJECT_NAME_VARIABLES = ("STACKD_PROJECT_NAME", "COMPOSE_PROJECT_NAME")


@dataclass(frozen=True)
class LoadOptions:
    """What `stackd`'s global options say about the stack to load.

    files: `-f` values in order ("-" is stdin); None discovers compose.yaml & co.
    environ: the shell environment (None: this process's).
    stdin: the text "-" stands for (None: read sys.stdin).
    cwd: where relative `-f` paths start (None: the working directory).
    on_read: told of every file read, as (path, kind, text), kind "stack" for stack
      files ("-" for stdin) or "env" for .env, --env-file and env_file files: the
      daemon records them in the revision it applies.
    probes: keeps every question the load asks of the disk (spec/probes.py): the
      daemon's `up` of an unchanged stack reuses its last load when all still hold.
    """

    files: Sequence[str] | None = None
    project_name: str | None = None
    project_directory: str | Path | None = None
    env_files: Sequence[str] | None = None
    profiles: Sequence[str] | None = None
    # Services named on the command line (`up tools`): their profiles are enabled too,
    # as Compose enables a service that is explicitly targeted.
    services: Sequence[str] | None = None
    environ: Mapping[str, str] | None = None
    stdin: str | None = None
    cwd: str | Path | None = None
    on_warning: Callable[[str], None] | None = None
    on_read: Callable[[str, str, str], None] | None = None
    probes: Probes | None = None


def load(options: LoadOptions | None = None) -> Stack:
    """Read, interpolate, merge, normalise and validate a project's stack files.

    Raises SpecError (a file is wrong; carries file:line:col) or UsageError (the
    command line points at nothing).
    """
    return _discovered(options or LoadOptions()).run()


def variables(options: LoadOptions | None = None
              ) -> tuple[dict[str, str], tuple[VariableUse, ...]]:
    """What interpolation sees (the shell's variables over .env's) and how the project's
    files use each variable, sorted by name: `config --environment`/`--variables`. The
    files are read and interpolated, not validated, and a required variable left unset
    does not stop it (finding those is what the listing is for)."""
    return _discovered(options or LoadOptions()).variables()


def _discovered(options: LoadOptions) -> _Loader:
    """A loader of the project the options point at (its files found as Compose finds
    them)."""
    probes = options.probes or Probes()
    source = ProjectSource.discover(
        options.files, options.project_directory, options.cwd, probes=probes,
        environ=os.environ if options.environ is None else options.environ,
        env_files=options.env_files)
    return _Loader(options, source, probes=probes)


def load_text(text: str, *, file: str = "compose.yaml", project_name: str = "stack",
              environ: Mapping[str, str] | None = None,
              project_directory: str | Path | None = None) -> Stack:
    """Load one stack from a string (tests, stdin, the daemon's API)."""
    directory = Path(project_directory) if project_directory is not None else Path.cwd()
    options = LoadOptions(project_name=project_name, environ=environ or {}, stdin=text)
    source = ProjectSource((STDIN,), directory)
    return _Loader(options, source, stdin_name=file).run()


@dataclass
class _Loader:
    options: LoadOptions
    source: ProjectSource
    stdin_name: str = "<stdin>"
    warnings: list[str] = field(default_factory=list)
    probes: Probes = field(default_factory=Probes)
    _docs: dict[str, Any] = field(default_factory=dict)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        if self.options.on_warning is not None:
            self.options.on_warning(message)

    def run(self) -> Stack:
        environ = dict(os.environ if self.options.environ is None else self.options.environ)
        directory = self.source.project_directory
        variables = Variables(self.project_variables(environ, directory), self.warn)
        docs = [self.read_file(f, variables, ()) for f in self.source.files]
        doc = merge_all(docs)
        if not isinstance(doc, Mapping):
            raise SpecError("the stack is empty")
        doc = copy_placed(doc)
        doc["name"] = self.project_name(doc, directory, variables.values)
        doc = absolutize(doc, directory, self.home)
        enabled = list(self.options.profiles or [])
        profiles = next((variables.values[v] for v in PROFILES_VARIABLES
                         if variables.values.get(v)), "")
        enabled += [p for p in profiles.split(",") if p]
        doc, dropped = apply_profiles(doc, enabled, self.options.services or ())
        doc = resolve_environment(doc, variables.values, self.read_env_file)
        doc = resolve_label_files(doc, self.read_env_file)
        # Validate the shape first, so a misspelt key is reported as such and not as
        # the missing thing it was meant to be.
        table = locations(doc)
        build_stack(doc, lambda p: _nearest(table, p))
        doc = check_references(doc, dropped)
        doc = add_default_network(doc)
        doc = canonical_stack(doc)
        table = locations(doc)
        stack = build_stack(doc, lambda p: _nearest(table, p))
        stack._locations = table
        stack._warnings = tuple(self.warnings)
        stack._disabled = frozenset(dropped)
        stack._files = tuple(str(f) for f in self.source.files)
        check_names(stack)
        return stack

    def variables(self) -> tuple[dict[str, str], tuple[VariableUse, ...]]:
        environ = dict(os.environ if self.options.environ is None else self.options.environ)
        values = self.project_variables(environ, self.source.project_directory)
        seen = Variables(values, lenient=True)
        done: set[str] = set()
        todo = list(self.source.files)
        while todo:  # each file once, and the files it includes or extends from
            file = todo.pop(0)
            if file in done:
                continue
            done.add(file)
            name, text = self.read_text(file)
            raw = interpolate_tree(read_yaml(text, name), seen)  # what is read, unchecked
            base = Path(file).parent if file != STDIN else self.source.project_directory
            todo += [str(self.probes.resolve(base / p)) for p in _referenced_files(raw)]
        return dict(values), tuple(sorted(seen.uses.values(), key=lambda u: u.name))

    def project_variables(self, environ: dict[str, str], directory: Path) -> dict[str, str]:
        """Shell environment over .env (or over the --env-file files that replace it)."""
        if self.options.env_files:
            files = [str((Path(self.options.cwd or self.probes.cwd()) / f).absolute())
                     for f in self.options.env_files]
            required = True
        else:
            files = [str(directory / ".env")]
            required = False
        values: dict[str, str] = {}
        for path in files:
            try:
                text = self.read_env_file(path)
            except FileNotFoundError:
                if required:
                    raise SpecError(f"env file {path!r} does not exist",
                                    hint="check the --env-file path") from None
                continue
            except (OSError, UnicodeDecodeError) as exc:
                raise SpecError(f"cannot read env file {path!r}: {exc}") from None
            values.update(parse_dotenv(text, path, {**values, **environ}))
        return {**values, **environ}

    def project_name(self, doc: Mapping[str, Any], directory: Path,
                     variables: Mapping[str, str]) -> str:
        """-p, else $STACKD_PROJECT_NAME (or Compose's $COMPOSE_PROJECT_NAME), else the
        top-level name:, else the directory's."""
        if self.options.project_name:
            return check_project_name(self.options.project_name, "-p")
        for variable in PROJECT_NAME_VARIABLES:
            if variables.get(variable):
                return check_project_name(variables[variable], variable)
        name = doc.get("name")
        if name is not None:
            if not isinstance(name, str):
                raise SpecError(f"name must be a string, not {describe(name)}",
                                location=where(doc, "name"))
            return check_project_name(name, "the top-level name:")
        return check_project_name(self.probes.resolve(directory).name or "default",
                                  "the project directory's name")

    def display(self, file: str) -> str:
        return _display(file, self.options.cwd)

    def _told(self, path: str, kind: str, text: str) -> str:
        if self.options.on_read is not None:
            self.options.on_read(path, kind, text)
        return text

    def read_env_file(self, path: str) -> str:
        """An env file's text (.env, --env-file, env_file:, an include's env_file)."""
        return self._told(path, "env", self.probes.read_text(path))

    def read_text(self, file: str) -> tuple[str, str]:
        """(display name, text) of a stack file."""
        if file == STDIN:
            text = self.options.stdin
            if text is None:
                text = sys.stdin.read()
            return self.stdin_name, self._told(STDIN, "stack", text)
        try:
            return self.display(file), self._told(file, "stack", self.probes.read_text(file))
        except FileNotFoundError:
            raise
        except UnicodeDecodeError:
            raise SpecError(f"{self.display(file)} is not UTF-8 text") from None
        except OSError as exc:
            raise SpecError(f"cannot read {self.display(file)}: {exc.strerror}") from None

    def parse(self, file: str, variables: Variables) -> Any:
        """One file read, interpolated and in canonical form (cached per file)."""
        if file in self._docs:
            return self._docs[file]
        name, text = self.read_text(file)
        raw = read_yaml(text, name)
        if not isinstance(raw, Mapping):
            raise SpecError(f"{name} must hold a mapping (services:, networks:, …), not "
                            f"{describe(raw)}", location=getattr(raw, "loc", Location(name)))
        if "version" in raw:
            self.warn(f"the top-level 'version' is obsolete and ignored "
                      f"({where(raw, 'version')})")
        doc = canonical_stack(interpolate_tree(raw, variables))
        self._docs[file] = doc
        return doc

    @property
    def home(self) -> str | None:
        """$HOME of the caller's environment, for `~` in paths."""
        environ = os.environ if self.options.environ is None else self.options.environ
        return environ.get("HOME")

    def read_file(self, file: str, variables: Variables, chain: tuple[str, ...]) -> Any:
        """One file with its includes and extends resolved (not yet merged with others)."""
        doc = self.parse(file, variables)
        doc = self.include(doc, file, variables, (*chain, file))

        def read_other(path: str) -> Any:
            return self.parse(path, variables)

        return resolve_extends(doc, file, read_other, self.home, self.probes.resolve)

    def include(self, doc: Any, file: str, variables: Variables,
                chain: tuple[str, ...]) -> Any:
        """Bring in `include:`d projects; a resource defined twice is an error."""
        if "include" not in doc:
            return doc
        entries = doc["include"]
        loc = where(doc, "include")
        if isinstance(entries, str | Mapping):
            entries = [entries]
        if not isinstance(entries, list):
            raise SpecError(f"include must be a list, not {describe(entries)}", location=loc)
        out = copy_placed(doc)
        del out["include"]
        base_dir = Path(file).parent if file != STDIN else self.source.project_directory
        for i, entry in enumerate(entries):
            eloc = where(entries, i) or loc
            paths, project_dir, env_files = _include_entry(entry, eloc)
            files = [str(self.probes.resolve(base_dir / p)) for p in paths]
            for f in files:
                if f in chain:
                    raise SpecError(f"include cycle: {self.display(f)} includes itself",
                                    location=eloc)
                if not self.probes.is_file(f):
                    raise SpecError(f"included file {f!r} does not exist", location=eloc)
            pdir = (self.probes.resolve(base_dir / project_dir) if project_dir
                    else Path(files[0]).parent)
            inc_vars = dict(variables.values)
            for ef in env_files or [str(pdir / ".env")]:
                ef_path = base_dir / ef
                if self.probes.is_file(ef_path):
                    env_text = self.read_env_file(str(ef_path))
                    for k, v in parse_dotenv(env_text, str(ef_path), {}).items():
                        inc_vars.setdefault(k, v)
            inc_variables = Variables(inc_vars, self.warn)
            sub = _Loader(self.options, ProjectSource(tuple(files), pdir),
                          warnings=self.warnings, probes=self.probes)
            included = merge_all([sub.read_file(f, inc_variables, chain) for f in files])
            included = absolutize(included, pdir, self.home)
            out = _add_included(out, included, eloc)
        return out


def _referenced_files(doc: Any) -> list[str]:
    """The files a document's `include:` and services' `extends.file` name, as written
    (relative to its directory); what is malformed is left to the real load."""
    if not isinstance(doc, Mapping):
        return []
    out: list[str] = []
    entries = doc.get("include") or []
    for entry in entries if isinstance(entries, list) else [entries]:
        paths = entry.get("path") if isinstance(entry, Mapping) else entry
        out += [p for p in (paths if isinstance(paths, list) else [paths]) if isinstance(p, str)]
    services = doc.get("services")
    for svc in services.values() if isinstance(services, Mapping) else ():
        extends = svc.get("extends") if isinstance(svc, Mapping) else None
        if isinstance(extends, Mapping) and isinstance(extends.get("file"), str):
            out.append(extends["file"])
    return out


def _include_entry(entry: Any, loc: Location | None) -> tuple[list[str], str | None, list[str]]:
    if isinstance(entry, str):
        return [entry], None, []
    if isinstance(entry, Mapping):
        paths = entry.get("path")
        if isinstance(paths, str):
            paths = [paths]
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
            raise SpecError("include entries need path: FILE (or a list of files)",
                            location=loc)
        project_dir = entry.get("project_directory")
        env_file = entry.get("env_file") or []
        if isinstance(env_file, str):
            env_file = [env_file]
        unknown = set(entry) - {"path", "project_directory", "env_file"}
        if unknown:
            raise SpecError(f"include: unknown key {sorted(unknown)[0]!r}", location=loc,
                            hint="include takes path, project_directory and env_file")
        return list(paths), project_dir if isinstance(project_dir, str) else None, \
            [str(e) for e in env_file]
    raise SpecError(f"include entries must be paths or mappings, not {describe(entry)}",
                    location=loc)


def _add_included(doc: PlacedDict, included: Any, loc: Location | None) -> PlacedDict:
    if not isinstance(included, Mapping):
        return doc
    for section in ("services", "networks", "volumes", "configs", "secrets"):
        theirs = included.get(section)
        if not isinstance(theirs, Mapping):
            continue
        ours = doc.get(section)
        merged = copy_placed(ours) if isinstance(ours, Mapping) else PlacedDict(loc=loc)
        for name, value in theirs.items():
            if name in merged:
                # compose-go since late 2025 (wger-project/docker relies on it): what
                # the including file says of an included resource overrides it, as a
                # later -f file would.
                merged.put(name, merge(value, merged[name], (section, str(name))),
                           where(merged, name))
            else:
                merged.put(name, value, where(theirs, name))
        doc[section] = merged
    return doc


def _display(file: str, cwd: str | Path | None) -> str:
    """Paths in messages: relative to the (user's) working directory when below it."""
    try:
        rel = os.path.relpath(file, cwd)
    except ValueError:
        return file
    return file if rel.startswith("..") else rel


def locations(doc: Any, prefix: ElementPath = ()) -> dict[ElementPath, Location]:
    """The path → place table of a document."""
    table: dict[ElementPath, Location] = {}
    stack: list[tuple[ElementPath, Any]] = [(prefix, doc)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, PlacedDict):
            for k, v in node.items():
                loc = node.locs.get(k)
                if loc is not None:
                    table[(*path, k)] = loc
                stack.append(((*path, k), v))
        elif isinstance(node, PlacedList):
            for i, v in enumerate(node):
                loc = node.locs.get(i)
                if loc is not None:
                    table[(*path, i)] = loc
                stack.append(((*path, i), v))
        elif isinstance(node, Mapping):
            for k, v in node.items():
                stack.append(((*path, k), v))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                stack.append(((*path, i), v))
    return table


def _nearest(table: Mapping[ElementPath, Location], path: ElementPath) -> Location | None:
    for end in range(len(path), 0, -1):
        loc = table.get(tuple(path[:end]))
        if loc is not None:
            return loc
    return None


__all__ = ["LoadOptions", "load", "load_text", "locations"]
