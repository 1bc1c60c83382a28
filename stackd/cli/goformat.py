"""Docker's `--format` templates, the part scripts use: `{{.Field}}` and
`{{.Field.Sub}}` (and `{{json .}}`, `{{json .Field}}`), printed as Go prints them
(`[a b]`, `map[k:v]`, `true`), `table` for a header row and tab-aligned columns,
`\\t` and `\\n` as a tab and a newline. Pure. Anything else Go's templates have (ranges,
functions, pipelines) is refused by name rather than printed as it stands.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from stackd.errors import UsageError
from stackd.printable import shown

_ACTION = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_FIELD = re.compile(r"^\.([A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z][A-Za-z0-9]*)*)$")
_JSON = re.compile(r"^json\s+\.([A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z][A-Za-z0-9]*)*)?$")


def render(template: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """Each row through `template` (one line per row, or a table); `rows` map Docker's
    field names (Name, Status, …) to their values."""
    fields = sorted({k for r in rows for k in r}) if rows else []
    table = template.startswith("table")
    body = template[len("table"):].lstrip() if table else template
    body = body.replace("\\t", "\t").replace("\\n", "\n")
    for action in _ACTION.findall(body):
        _check(action, fields)
    lines = [_fill(body, row) for row in rows]
    if not table:
        return "".join(f"{line}\n" for line in lines)
    header = _ACTION.sub(lambda m: _header(m.group(1)), body)
    return _align([header, *lines])


def _check(action: str, fields: Sequence[str]) -> None:
    m = _FIELD.match(action) or _JSON.match(action)
    if m is None and action not in ("json .", "."):
        raise UsageError(f"--format: {{{{{action}}}}} is not a field stackd fills in",
                         hint="use {{.Field}} or {{json .}}; fields: " + ", ".join(fields))
    name = m.group(1).split(".")[0] if m is not None and m.group(1) else None
    if name and fields and name not in fields:
        raise UsageError(f"--format: there is no field {name!r}",
                         hint="fields: " + ", ".join(fields))


def _fill(body: str, row: Mapping[str, Any]) -> str:
    def value(m: re.Match[str]) -> str:
        action = m.group(1)
        # A value an image chose (its command, its platform) reaches the terminal
        # without control sequences: JSON escapes them, plain text shows them as `?`.
        if action in ("json .", "."):
            return json.dumps(dict(row)) if action.startswith("json") else shown(str(dict(row)))
        j = _JSON.match(action)
        if j is not None:
            return json.dumps(_lookup(row, j.group(1)))
        v = _lookup(row, action[1:])
        return "" if v is None else shown(_go(v))
    return _ACTION.sub(value, body)


def _lookup(row: Mapping[str, Any], path: str) -> Any:
    value: Any = row
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _go(value: Any) -> str:
    """A value as Go's text/template prints it: `[a b]`, `map[k:v]` (keys sorted),
    `true`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + " ".join(_go(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{_go(value[k])}" for k in sorted(value)) + "]"
    return str(value)


# Docker's headers that are not their field's name in capitals.
_HEADERS = {"RunningFor": "CREATED"}


def _header(action: str) -> str:
    m = _FIELD.match(action) or _JSON.match(action)
    name = (m.group(1).split(".")[-1] if m is not None and m.group(1) else None) or "JSON"
    return _HEADERS.get(name) or re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).upper()


def _align(lines: Sequence[str]) -> str:
    """Tab-separated cells in columns, as Go's tabwriter lays out Docker's tables."""
    rows = [line.split("\t") for line in lines]
    widths: dict[int, int] = {}
    for cells in rows:
        for i, c in enumerate(cells[:-1]):
            widths[i] = max(widths.get(i, 0), len(c))
    return "".join("   ".join([*(c.ljust(widths[i]) for i, c in enumerate(cells[:-1])),
                               cells[-1]]).rstrip() + "\n" for cells in rows)
