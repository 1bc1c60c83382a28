"""A `Stack` written back as a compose document, deterministically.

Top-level sections come in the compose order (name, services, networks, volumes,
configs, secrets, then x-* extensions); every mapping below is sorted by key; lists keep
their order, which means something. The YAML is quoted wherever a string would read
back as something else, so loading the output gives the same stack.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from stackd.spec.model import Stack
from stackd.spec.yaml_positions import resolve_scalar_tag

_TOP = ("name", "services", "networks", "volumes", "configs", "secrets")


def compose_document(stack: Stack) -> dict[str, Any]:
    raw = stack.to_compose()
    out: dict[str, Any] = {}
    for key in _TOP:
        if key in raw and (key == "name" or raw[key]):
            out[key] = _sorted(raw[key])
    for key in sorted(k for k in raw if k not in _TOP):
        out[key] = _sorted(raw[key])
    return out


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    if isinstance(value, str):
        # Values are resolved already; escape `$` so reading the output back does not
        # interpolate a second time (as `docker compose config` does).
        return value.replace("$", "$$")
    return value


_OTHER_BREAKS = frozenset("\r\x85\u2028\u2029")  # YAML's line breaks besides \n


class _Dumper(yaml.SafeDumper):
    pass


def _represent_str(dumper: _Dumper, value: str) -> yaml.ScalarNode:
    # PyYAML quotes what YAML 1.1 would misread; we read with YAML 1.2 rules, so also
    # quote what those would turn into a number, boolean or null.
    if resolve_scalar_tag(value) != "tag:yaml.org,2002:str":
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    if any(c in _OTHER_BREAKS for c in value):
        # A reader folds these into spaces in plain, single-quoted and block scalars;
        # PyYAML writes them raw there (allow_unicode), so only escaped do they survive.
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def to_yaml(stack: Stack) -> str:
    return yaml.dump(compose_document(stack), Dumper=_Dumper, sort_keys=False,
                     default_flow_style=False, allow_unicode=True, width=100)


def to_json(stack: Stack) -> str:
    return json.dumps(compose_document(stack), indent=2, ensure_ascii=False) + "\n"
