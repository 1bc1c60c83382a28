"""Placement constraints in Swarm's syntax: `node.labels.zone == east`, `node.role != worker`,
and spread preferences: `- spread: node.labels.zone`.

Values compare without regard to case, as Swarm does. A node without the label never
equals a value and always differs from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stackd.errors import Location, SpecError
from stackd.scheduler.nodes import Node

_FIELDS = ("node.id", "node.hostname", "node.role", "node.platform.os", "node.platform.arch")
_LABEL = "node.labels."
_SYNTAX = re.compile(r"^\s*(?P<key>[^=!\s]+)\s*(?P<op>==|!=)\s*(?P<value>\S.*?)\s*$")


@dataclass(frozen=True, slots=True)
class Constraint:
    key: str
    equal: bool
    value: str

    def __str__(self) -> str:
        return f"{self.key} {'==' if self.equal else '!='} {self.value}"

    def matches(self, node: Node) -> bool:
        actual = _value_of(node, self.key)
        same = actual is not None and actual.casefold() == self.value.casefold()
        return same if self.equal else not same


def parse_constraint(
    text: str, *, service: str, location: Location | None = None
) -> Constraint:
    """Parse one constraint of `service`; a malformed one is a SpecError at `location`."""
    m = _SYNTAX.match(text)
    if m is None:
        raise SpecError(
            f"service {service!r}: placement constraint {text!r} is not `KEY == VALUE` "
            "or `KEY != VALUE`", location=location,
            hint="for example `node.labels.zone == east`")
    key = m["key"]
    if key not in _FIELDS and not (key.startswith(_LABEL) and len(key) > len(_LABEL)):
        raise SpecError(
            f"service {service!r}: placement constraint on unknown attribute {key!r}",
            location=location,
            hint=f"use node.labels.<name> or one of {', '.join(_FIELDS)}")
    return Constraint(key=key, equal=m["op"] == "==", value=m["value"])


def _value_of(node: Node, key: str) -> str | None:
    if key.startswith(_LABEL):
        return node.labels.get(key[len(_LABEL):])
    return {
        "node.id": node.name,
        "node.hostname": node.name,
        "node.role": node.role,
        "node.platform.os": node.os,
        "node.platform.arch": node.arch,
    }[key]


def parse_spread(kind: str, descriptor: str, *, service: str,
                 location: Location | None = None) -> str:
    """A placement preference of `service`, `spread: node.labels.<name>`: the label name."""
    if kind != "spread":
        raise SpecError(f"service {service!r}: placement preference {kind!r} is not known",
                        location=location, hint="the one preference is spread: node.labels.<name>")
    if not (descriptor.startswith(_LABEL) and len(descriptor) > len(_LABEL)):
        raise SpecError(f"service {service!r}: cannot spread over {descriptor!r}",
                        location=location, hint="spread over a node label: node.labels.<name>")
    return descriptor[len(_LABEL):]


def spread_value(node: Node, label: str) -> str | None:
    """The group a node is in for a spread over `label` (None: nodes without it, as one
    group, as Swarm groups them)."""
    value = node.labels.get(label)
    return value.casefold() if value is not None else None
