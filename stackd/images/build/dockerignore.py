"""`.dockerignore`: which context paths a build may see. Pure.

Patterns as Docker reads them: one per line, `#` comments, `*`, `?`, `**` (any number
of directories), a leading `!` re-includes; the last matching line wins; a pattern
that matches a directory excludes everything under it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Pattern:
    regex: re.Pattern[str]
    exclude: bool


def _translate(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            if i < len(pattern) and pattern[i] == "/":
                out[-1] = "(?:.*/)?"
                i += 1
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i)
            if end < 0:
                out.append(re.escape(c))
            else:
                out.append(pattern[i : end + 1])
                i = end + 1
                continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


def parse_dockerignore(text: str) -> list[Pattern]:
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclude = not line.startswith("!")
        line = line.lstrip("!").strip()
        line = "/".join(p for p in line.split("/") if p not in ("", "."))
        if line:
            patterns.append(Pattern(_translate(line), exclude))
    return patterns


def is_ignored(rel_path: str, patterns: list[Pattern]) -> bool:
    """Is the context-relative path `rel_path` (or a directory above it) excluded?"""
    parts = rel_path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for p in patterns:
        if any(p.regex.match(prefix) for prefix in prefixes):
            ignored = p.exclude
    return ignored
