""".env files as compose reads them.

`KEY=value` lines; `export ` prefixes, blank lines and `#` comments are ignored;
single quotes are literal; double quotes understand \\n, \\t, \\" and \\\\; unquoted values
end at ` #`. Unquoted and double-quoted values are interpolated with the shell
environment and the lines above, single-quoted ones are not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from stackd.errors import Location, SpecError
from stackd.spec.interpolate import Variables, interpolate

_LINE = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.\-]*)\s*(?:=\s*(.*))?$")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


def parse_dotenv(text: str, file: str, lookup: Mapping[str, str]) -> dict[str, str]:
    """Parse one env file; `lookup` is what `${VAR}` inside values may refer to."""
    values: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        raw = lines[i]
        i += 1
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        loc = Location(file, i, 1)
        m = _LINE.match(raw)
        if m is None:
            raise SpecError(f"{file}: line {i} is not NAME=value", location=loc)
        name, rest = m.group(1), m.group(2)
        if rest is None:  # a bare NAME passes its value through, as compose-go's
            if name in lookup:
                values[name] = lookup[name]
            continue
        if rest.startswith(("'", '"')):
            quote = rest[0]
            body = rest[1:]
            while _closing(body, quote) < 0 and i < len(lines):
                body += "\n" + lines[i]
                i += 1
            end = _closing(body, quote)
            if end < 0:
                raise SpecError(f"{file}: the value of {name} has no closing {quote}",
                                location=loc)
            value = body[:end]
            if quote == "'":
                values[name] = value
                continue
            value = re.sub(r"\\(.)", lambda e: _ESCAPES.get(e.group(1), e.group(0)), value)
        else:
            value = re.split(r"\s+#", rest, maxsplit=1)[0].strip()
        env = Variables({**values, **lookup})
        values[name] = interpolate(value, env, loc)
    return values


def _closing(body: str, quote: str) -> int:
    pos = 0
    while pos < len(body):
        if body[pos] == "\\" and quote == '"':
            pos += 2
            continue
        if body[pos] == quote:
            return pos
        pos += 1
    return -1


def parse_raw_env(text: str, file: str, lookup: Mapping[str, str]) -> dict[str, str]:
    """An env file as `docker run --env-file` reads it (compose's `format: raw`): each
    `NAME=value` taken as written — no quotes, no `${}`, no ` #` comment — and a bare
    `NAME` passed through from `lookup` when it is there."""
    values: dict[str, str] = {}
    for i, raw in enumerate(text.removeprefix("\ufeff").splitlines(), 1):
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        name, has_value, value = line.partition("=")
        loc = Location(file, i, 1)
        if not name:
            raise SpecError(f"{file}: line {i} names no variable", location=loc)
        if any(c.isspace() for c in name):
            raise SpecError(f"{file}: line {i}: the name {name!r} holds whitespace",
                            location=loc)
        if has_value:
            values[name] = value
        elif name in lookup:
            values[name] = lookup[name]
    return values
