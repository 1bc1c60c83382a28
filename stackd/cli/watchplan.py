"""`stackd watch`: what a batch of changed host paths asks of each service, by its
`develop.watch` rules. Pure.

As Compose's watch: a path counts for a rule when it is the rule's path or below it,
is not ignored (the rule's `ignore` patterns, relative to its path, as .dockerignore
reads them; for a rebuild, also the build context's .dockerignore; always editors'
swap files and .git), and, when the rule has `include`, is included. A rebuild wins
over everything else for its service (the new containers have the new files); else
the syncs are done, then a restart if a rule asks for one, then each rule's exec.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from stackd.images.build.dockerignore import Pattern, is_ignored, parse_dockerignore
from stackd.spec.model import Hook, WatchRule

# What no rule wants to act on: version control and editors' scratch files.
ALWAYS_IGNORED = parse_dockerignore(
    "**/.git\n**/*.swp\n**/*.swx\n**/*~\n**/.#*\n**/4913\n**/.DS_Store\n")


@dataclass(frozen=True, slots=True)
class Sync:
    host: str  # the changed path on the host
    container: str  # where it goes in the container
    removed: bool  # gone on the host: removed in the container


@dataclass(frozen=True, slots=True)
class Actions:
    service: str
    rebuild: bool = False
    syncs: tuple[Sync, ...] = ()
    restart: bool = False
    execs: tuple[Hook, ...] = ()
    changed: tuple[str, ...] = ()  # the host paths that triggered it, for the message

    @property
    def empty(self) -> bool:
        return not (self.rebuild or self.syncs or self.restart or self.execs)


@dataclass(frozen=True, slots=True)
class Watched:
    """A service's rules, and its build context's .dockerignore (for rebuilds)."""

    rules: tuple[WatchRule, ...]
    context: str | None = None
    context_ignore: tuple[Pattern, ...] = ()


@functools.cache
def _patterns(lines: tuple[str, ...]) -> list[Pattern]:
    """A rule's patterns, parsed once: the watch asks of every path at every look."""
    return parse_dockerignore("\n".join(lines))


def relative_to(rule: WatchRule, path: str, *, walking: bool = False) -> str | None:
    """`path` relative to the rule's path ("" for the path itself), if it counts.
    walking: whether to look inside the directory `path` (`include` names files, so a
    directory it does not name may still hold some)."""
    base = os.path.normpath(rule.path)
    path = os.path.normpath(path)
    if path == base:
        rel = ""
    elif path.startswith(base.rstrip("/") + "/"):
        rel = path[len(base.rstrip("/")) + 1:]
    else:
        return None
    if rel and (is_ignored(rel, ALWAYS_IGNORED)
                or is_ignored(rel, _patterns(rule.ignore))):
        return None
    if rule.include and rel and not walking and not is_ignored(
            rel, _patterns(rule.include)):
        return None
    return rel


def plan(watched: Mapping[str, Watched], changed: Mapping[str, bool]) -> list[Actions]:
    """Per service (in name order), what `changed` (host path → it still exists) asks."""
    out = []
    for service in sorted(watched):
        w = watched[service]
        rebuild = restart = False
        syncs: dict[str, Sync] = {}
        execs: list[Hook] = []
        hits: set[str] = set()
        for rule in w.rules:
            fired = False
            for path in sorted(changed):
                rel = relative_to(rule, path)
                if rel is None:
                    continue
                if rule.action == "rebuild" and _ignored_by_context(w, path):
                    continue
                fired = True
                hits.add(path)
                if rule.action.startswith("sync") and rule.target is not None:
                    target = os.path.normpath(os.path.join(rule.target, rel)) if rel \
                        else rule.target
                    syncs.setdefault(target, Sync(path, target, not changed[path]))
            if not fired:
                continue
            rebuild |= rule.action == "rebuild"
            restart |= rule.action in ("restart", "sync+restart")
            if rule.action == "sync+exec" and rule.exec is not None:
                execs.append(rule.exec)
        actions = Actions(service, changed=tuple(sorted(hits)))
        if rebuild:
            actions = Actions(service, rebuild=True, changed=actions.changed)
        elif hits:
            actions = Actions(service, syncs=tuple(syncs[t] for t in sorted(syncs)),
                              restart=restart, execs=tuple(execs), changed=actions.changed)
        if not actions.empty:
            out.append(actions)
    return out


def initial(watched: Mapping[str, Watched], present: Sequence[str]) -> list[Actions]:
    """`initial_sync` rules: every file under their path synced once, as the watch
    starts (`present`: the files the first look found); no restart, no exec."""
    out = []
    for service in sorted(watched):
        syncs = []
        for rule in watched[service].rules:
            if not rule.initial_sync or not rule.action.startswith("sync") or not rule.target:
                continue
            for path in sorted(present):
                rel = relative_to(rule, path)
                if rel is not None:
                    target = os.path.normpath(os.path.join(rule.target, rel)) if rel \
                        else rule.target
                    syncs.append(Sync(path, target, False))
        if syncs:
            out.append(Actions(service, syncs=tuple(syncs),
                               changed=tuple(s.host for s in syncs)))
    return out


def _ignored_by_context(w: Watched, path: str) -> bool:
    if w.context is None or not w.context_ignore:
        return False
    base = os.path.normpath(w.context)
    if not path.startswith(base.rstrip("/") + "/"):
        return False
    return is_ignored(path[len(base.rstrip("/")) + 1:], list(w.context_ignore))
