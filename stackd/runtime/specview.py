"""The monitor's view of a `ContainerSpec`: the same fields, read as plain data.

The monitor is host memory paid for as long as any container runs (issue #20), and
pydantic with the spec's compiled schemas is more than half of it. So the monitor never
imports pydantic: it checks a request's spec against the model's own JSON schema
(`containerspec.schema.json`, written from `ContainerSpec` by
`python -m stackd.runtime.containerspec` and kept equal to it by a unit test) and reads
it through `SpecView`s, which answer the attributes a `ContainerSpec` answers
(`spec.process.args`, `spec.devices[0].major`, …). There is one definition of the
spec's fields and rules, the pydantic model; this module only interprets what pydantic
made of it. The daemon still builds and validates real `ContainerSpec`s; the monitor,
which treats every request as hostile, checks again here and refuses with a SpecError
that names the field.

The monitor's modules import no `typing` either (1.6 MiB): they say
`TYPE_CHECKING = False` and import typing's names under `if TYPE_CHECKING:`, which
mypy reads as typing's own (test_monitor_light.py checks the module set).

The schema subset interpreted is what pydantic emits for our models: objects with
`properties`/`required`/`additionalProperties`, arrays with `items`, string `enum` and
`pattern`, integer `minimum`/`maximum`, `anyOf` with null, and `$ref` to `$defs`.
"""

from __future__ import annotations

import json
import os
import re

from stackd.errors import SpecError

TYPE_CHECKING = False  # typing's, without importing typing: see specview
if TYPE_CHECKING:
    from typing import Any

    from stackd.runtime.containerspec import ContainerSpec, Device

SCHEMA_FILE = os.path.join(os.path.dirname(__file__), "containerspec.schema.json")
_schema: dict[str, Any] | None = None
_digest = ""


def schema() -> dict[str, Any]:
    """The schema this process checks specs with, read once: a monitor reads it as it
    starts, so an upgrade's new file on disk never pairs with the old code."""
    global _schema, _digest
    if _schema is None:
        with open(SCHEMA_FILE, "rb") as f:
            raw = f.read()
        _schema = json.loads(raw)
        _digest = _fnv1a(raw)
    return _schema


def _fnv1a(data: bytes) -> str:
    # Tells two schema files apart; hashlib would load OpenSSL into the monitor (#20).
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def schema_digest() -> str:
    """Which schema (so which stackd's specs) this process takes: the monitor's and the
    daemon's differ after an upgrade, until the old monitor goes."""
    schema()
    return _digest


class SpecView:
    """One object of a spec (the spec itself, its process, a mount, …): its fields as
    attributes, arrays as tuples, maps (labels, files, sysctls) as dicts. Read-only."""

    __slots__ = ("_data", "_fields", "_kind")

    def __init__(self, kind: str, data: dict[str, Any], fields: dict[str, Any]) -> None:
        object.__setattr__(self, "_kind", kind)
        object.__setattr__(self, "_data", data)  # the JSON it was read from
        object.__setattr__(self, "_fields", fields)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._fields[name]
        except KeyError:
            raise AttributeError(f"{self._kind} has no field {name!r}") from None

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{self._kind} is read-only")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SpecView) and self._data == other._data

    def __hash__(self) -> int:
        return hash(json.dumps(self._data, sort_keys=True))

    def __repr__(self) -> str:
        return f"{self._kind}({self._data!r})"


def device_rule(d: Device) -> str:
    """The devices.allow line of a resolved device: `c 10:229 rwm`."""
    return f"{d.type} {d.major}:{d.minor} {d.permissions}"


def load_spec(data: object) -> ContainerSpec:
    """A request's (or a record's) spec → its view; SpecError naming the first field
    that does not fit the model (a hostile or garbled spec)."""
    root = schema()
    spec: ContainerSpec = _read(data, root, root, "spec")
    return spec


def dump_spec(spec: ContainerSpec) -> dict[str, Any]:
    """The spec as JSON data (what `model_dump(mode="json")` gives)."""
    if isinstance(spec, SpecView):
        data: dict[str, Any] = spec._data
        return data
    return spec.model_dump(mode="json")


def replace(obj: Any, **changes: Any) -> Any:
    """`obj` (a view, or a pydantic model) with some fields changed, like model_copy."""
    if not isinstance(obj, SpecView):
        return obj.model_copy(update=changes)
    data = dict(obj._data)
    data.update({k: _to_json(v) for k, v in changes.items()})
    fields = dict(obj._fields)
    fields.update(changes)
    return SpecView(obj._kind, data, fields)


def _to_json(value: Any) -> Any:
    if isinstance(value, SpecView):
        return value._data
    if isinstance(value, tuple | list):
        return [_to_json(v) for v in value]
    return value


def _read(data: object, node: dict[str, Any], root: dict[str, Any], where: str) -> Any:
    """Check `data` against a schema node; → (json, value) as the view holds it."""
    ref = node.get("$ref")
    if ref is not None:
        name = ref.rsplit("/", 1)[1]
        return _read(data, root["$defs"][name], root, where)
    if "anyOf" in node:
        problems = []
        for option in node["anyOf"]:
            try:
                return _read(data, option, root, where)
            except SpecError as e:
                problems.append(e)
        raise problems[0]
    kind = node.get("type")
    if kind == "null":
        if data is not None:
            raise _bad(where, "should be null")
        return None
    if kind == "boolean":
        if not isinstance(data, bool):
            raise _bad(where, "should be a boolean")
        return data
    if kind in ("integer", "number"):
        number = int if kind == "integer" else int | float
        if isinstance(data, bool) or not isinstance(data, number):
            raise _bad(where, f"should be {'an integer' if kind == 'integer' else 'a number'}")
        if "minimum" in node and data < node["minimum"]:
            raise _bad(where, f"should be >= {node['minimum']}")
        if "maximum" in node and data > node["maximum"]:
            raise _bad(where, f"should be <= {node['maximum']}")
        return data
    if kind == "string":
        if not isinstance(data, str):
            raise _bad(where, "should be a string")
        if "enum" in node and data not in node["enum"]:
            raise _bad(where, f"should be one of {', '.join(map(repr, node['enum']))}")
        if "pattern" in node and not re.search(_pattern(node["pattern"]), data):
            raise _bad(where, f"should match {node['pattern']!r}")
        return data
    if kind == "array":
        if not isinstance(data, list | tuple):
            raise _bad(where, "should be an array")
        return tuple(_read(v, node["items"], root, f"{where}.{i}") for i, v in enumerate(data))
    if kind == "object":
        if not isinstance(data, dict):
            raise _bad(where, "should be an object")
        if "properties" not in node:  # a map: labels, files, sysctls
            values = node.get("additionalProperties", {})
            return {k: _read(v, values, root, f"{where}.{k}") for k, v in data.items()}
        return _object(data, node, root, where)
    raise _bad(where, f"has a type the monitor does not know ({kind!r})")  # a schema bug


def _object(data: dict[str, Any], node: dict[str, Any], root: dict[str, Any],
            where: str) -> SpecView:
    props: dict[str, Any] = node["properties"]
    extra = sorted(set(data) - set(props))
    if extra:
        raise _bad(f"{where}.{extra[0]}", "extra inputs are not permitted")
    fields: dict[str, Any] = {}
    full: dict[str, Any] = {}
    for name, prop in props.items():
        if name in data:
            raw = data[name]
        elif name in node.get("required", ()):
            raise _bad(f"{where}.{name}", "field required")
        else:
            raw = prop["default"]
        value = _read(raw, prop, root, f"{where}.{name}")
        fields[name] = value
        full[name] = _to_json(value)
    return SpecView(node.get("title", "object"), full, fields)


def _pattern(pattern: str) -> str:
    # JSON Schema's `$` (and pydantic-core's) is the end of the string; Python's also
    # matches before a final newline.
    return pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith("\\$") \
        else pattern


def _bad(where: str, what: str) -> SpecError:
    return SpecError(f"invalid container spec: {where}: {what}",
                     hint="fix the spec (the runtime monitor checks it again)")
