"""Variable interpolation, exactly the compose-spec forms.

`$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}`,
`${VAR?message}`, `${VAR:+alt}`, `${VAR+alt}`; defaults and alternatives may nest
further `${…}` and balanced braces (`${X:-{"a":1}}`); `$$` is a literal `$`. Only the
branch taken is expanded, so an unused default never warns or fails. An unset variable
without a default becomes "" and is reported once through `Variables.warn`.

A `$` that starts none of these (`a $ string`, `^REGEX$`, `$1`, `$(cmd)`, a bcrypt
hash's `$2a$14$…`) is kept as written, as Compose keeps it; only a malformed `${…}` is
an error. compose-go's template tests are the reference (tests/unit/spec).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from stackd.errors import Location, SpecError
from stackd.spec.yaml_positions import Override, PlacedDict, PlacedList

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = (":-", ":?", ":+", "-", "?", "+")


@dataclass(frozen=True, slots=True)
class VariableUse:
    """How a stack file uses a variable (`config --variables`): `${NAME:?…}` requires
    it, `${NAME:-default}` has a default, `${NAME:+alternate}` an alternate value
    (each as written, unexpanded)."""

    name: str
    required: bool = False
    default: str | None = None
    alternate: str | None = None


@dataclass
class Variables:
    """The values interpolation sees, and what it noticed along the way."""

    values: Mapping[str, str]
    warn: Callable[[str], None] = lambda message: None
    _warned: set[str] = field(default_factory=set)
    # Every variable the strings interpolated name, also in branches not taken.
    uses: dict[str, VariableUse] = field(default_factory=dict)
    # A required variable without a value reads as "" instead of failing: for listing
    # the variables, where an unset required one is what the user looks for.
    lenient: bool = False

    def missing(self, name: str, loc: Location | None) -> None:
        if name not in self._warned:
            self._warned.add(name)
            where = f" ({loc})" if loc is not None else ""
            self.warn(f"variable {name!r} is not set; using an empty string{where}")


def interpolate(text: str, env: Variables, loc: Location | None = None) -> str:
    """Expand one string. Raises SpecError for bad syntax and missing required values."""
    if "$" not in text:
        return text
    out, _ = _expand(text, 0, env, loc, text, nested=False)
    for use in variables_in(text):
        env.uses.setdefault(use.name, use)
    return out


def variables_in(text: str, level: int = 0) -> list[VariableUse]:
    """The variables `text` names, in order, those inside defaults and alternates too.
    Pure; a malformed `${…}` ends the scan (interpolation has refused it already), as
    does nesting past MAX_NESTING."""
    found: list[VariableUse] = []
    if level > MAX_NESTING:
        return found
    pos = 0
    while (i := text.find("$", pos)) >= 0:
        if text.startswith("$$", i):
            pos = i + 2
            continue
        braced = text.startswith("${", i)
        m = _NAME.match(text, i + 2 if braced else i + 1)
        if m is None:
            pos = i + 1
            continue
        name, pos = m.group(0), m.end()
        if not braced or text.startswith("}", pos):
            found.append(VariableUse(name))
            pos += braced
            continue
        op = next((o for o in _OPERATORS if text.startswith(o, pos)), None)
        if op is None:
            break
        start = pos + len(op)
        try:
            end = _skip(text, start, None, text)
        except SpecError:
            break
        word = text[start:end]
        found.append(VariableUse(name, required=op in (":?", "?"),
                                 default=word if op in (":-", "-") else None,
                                 alternate=word if op in (":+", "+") else None))
        found += variables_in(word, level + 1)
        pos = end + 1
    return found


# `${A:-${B:-x}}` nests a level or two; each level is a frame of the expansion, and
# a string nesting thousands (a generator's, or an attack) ended in RecursionError.
MAX_NESTING = 32


def _expand(text: str, pos: int, env: Variables, loc: Location | None, whole: str,
            *, nested: bool, level: int = 0) -> tuple[str, int]:
    """Expand from `pos` to the end, or to the `}` closing a nested default when nested."""
    if level > MAX_NESTING:
        shown = whole if len(whole) <= 80 else whole[:80] + "…"
        raise SpecError(f"interpolation in {shown!r} nests deeper than {MAX_NESTING} levels",
                        location=loc, hint="set the value in the environment or .env instead")
    out: list[str] = []
    n = len(text)
    depth = 0  # plain braces opened inside a nested default: they close before it does
    while pos < n:
        ch = text[pos]
        if nested and ch == "}":
            if depth == 0:
                return "".join(out), pos
            depth -= 1
        elif nested and ch == "{":
            depth += 1
        if ch != "$":
            out.append(ch)
            pos += 1
            continue
        nxt = text[pos + 1] if pos + 1 < n else ""
        if nxt == "$":
            out.append("$")
            pos += 2
        elif nxt == "{":
            value, pos = _braced(text, pos + 2, env, loc, whole, level)
            out.append(value)
        else:
            m = _NAME.match(text, pos + 1)
            if m is None:
                out.append("$")
                pos += 1
                continue
            out.append(_lookup(m.group(0), env, loc))
            pos = m.end()
    if nested:
        raise SpecError(f"invalid interpolation in {whole!r}: missing '}}'", location=loc)
    return "".join(out), pos


def _braced(text: str, pos: int, env: Variables, loc: Location | None,
            whole: str, level: int = 0) -> tuple[str, int]:
    m = _NAME.match(text, pos)
    if m is None:
        raise SpecError(f"invalid interpolation in {whole!r}: '${{' must be followed by a "
                        "variable name", location=loc, hint="write $$ for a literal $")
    name, pos = m.group(0), m.end()
    if text.startswith("}", pos):
        return _lookup(name, env, loc), pos + 1
    op = next((o for o in _OPERATORS if text.startswith(o, pos)), None)
    if op is None:
        raise SpecError(f"invalid interpolation in {whole!r} after ${{{name}", location=loc,
                        hint="forms are ${VAR}, ${VAR:-default}, ${VAR:?message}, ${VAR:+alt}")
    pos += len(op)
    value = env.values.get(name)
    is_set = value is not None
    non_empty = bool(value)
    chosen = {":-": not non_empty, "-": not is_set, ":?": not non_empty, "?": not is_set,
              ":+": non_empty, "+": is_set}[op]
    if chosen:
        word, pos = _expand(text, pos, env, loc, whole, nested=True, level=level + 1)
    else:
        pos = _skip(text, pos, loc, whole)
        word = ""
    pos += 1  # the closing '}'
    if op in (":?", "?"):
        if chosen and not env.lenient:
            message = word or "is required"
            raise SpecError(f"required variable {name!r} is missing a value: {message}",
                            location=loc, hint=f"set {name} in the environment or in .env")
        return value or "", pos
    if op in (":-", "-"):
        return (word if chosen else value or ""), pos
    return (word if chosen else ""), pos


def _skip(text: str, pos: int, loc: Location | None, whole: str) -> int:
    """Skip a branch that is not taken, up to its closing `}` (nested braces balanced)."""
    depth = 0
    while pos < len(text):
        ch = text[pos]
        if ch == "$" and text.startswith("$$", pos):
            pos += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            if depth == 0:
                return pos
            depth -= 1
        pos += 1
    raise SpecError(f"invalid interpolation in {whole!r}: missing '}}'", location=loc)


def _lookup(name: str, env: Variables, loc: Location | None) -> str:
    value = env.values.get(name)
    if value is None:
        env.missing(name, loc)
        return ""
    return value


def interpolate_tree(value: Any, env: Variables, loc: Location | None = None) -> Any:
    """Interpolate every string value (not keys) of a document read by yaml_positions."""
    if isinstance(value, str):
        return interpolate(value, env, loc)
    if isinstance(value, PlacedDict):
        out = PlacedDict(loc=value.loc)
        for k, v in value.items():
            vloc = value.value_locs.get(k) or value.where(k)
            out.put(k, interpolate_tree(v, env, vloc), value.locs.get(k))
        return out
    if isinstance(value, PlacedList):
        lst = PlacedList(loc=value.loc)
        for i, v in enumerate(value):
            lst.put(interpolate_tree(v, env, value.where(i)), value.locs.get(i))
        return lst
    if isinstance(value, Override):
        return Override(interpolate_tree(value.value, env, value.loc or loc), value.loc)
    return value
