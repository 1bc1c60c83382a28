"""Source names: a source's name is its stack's project name and a directory under the
state root, so it is a plain word, never a path."""

from __future__ import annotations

import re

from stackd.errors import UsageError

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")  # git fetches full ids only


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise UsageError(f"gitops source name {name!r} is not a plain name",
                         hint="use lower-case letters, digits, '-' and '_' (up to 63), "
                         "starting with a letter or digit: it names the stack too")
    return name


def check_ref(kind: str, ref: str) -> str:
    """A branch or tag name git accepts and no option or path trick can hide in."""
    if not REF.match(ref) or ".." in ref or ref.endswith((".lock", "/", ".")) or "//" in ref:
        raise UsageError(f"--{kind} {ref!r} is not a plain {kind} name",
                         hint="letters, digits, '.', '_', '-' and '/' only")
    return ref


def check_sha(sha: str) -> str:
    if not SHA.match(sha):
        raise UsageError(f"--commit {sha!r} is not a commit id",
                         hint="give the full hexadecimal commit id (git rev-parse HEAD)")
    return sha


def check_subpath(what: str, path: str) -> str:
    """A path inside the repository: relative, no `..`, no NUL."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if path.startswith("/") or any(p == ".." for p in parts) or "\x00" in path:
        raise UsageError(f"{what} {path!r} must be a path inside the repository",
                         hint="relative to the repository's top, without '..'")
    return "/".join(parts) or "."
