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
        if rest is None:
            continue  # a bare NAME in an env file sets nothing
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
