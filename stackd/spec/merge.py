"""Merging several compose documents, with the compose-spec merge rules.

Both sides are in canonical (long) form already, so most rules fall out of the shape:
mappings (environment, labels, depends_on, networks, ulimits…) merge key by key,
scalars are replaced. Sequences follow the spec: `command`, `entrypoint` and
`healthcheck.test` are replaced; ports, volumes, devices, configs, secrets and env_file merge by
their identifying keys (entries for the same target merge, later values winning);
lists of plain strings (dns, cap_add, expose, profiles…) are appended without
duplicates. `!reset` removes what earlier files set, `!override` replaces it whole.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from stackd.spec.yaml_positions import Override, PlacedDict, PlacedList, Reset

Path = tuple[str, ...]

_REPLACED: tuple[Path, ...] = (
    ("services", "*", "command"),
    ("services", "*", "entrypoint"),
    ("services", "*", "healthcheck", "test"),
)


def _port_key(p: Any) -> Any:
    if not isinstance(p, Mapping):
        return repr(p)
    return (p.get("host_ip"), p.get("published"), p.get("target"), p.get("protocol", "tcp"))


def _target_key(v: Any) -> Any:
    return v.get("target") if isinstance(v, Mapping) else repr(v)


def _ref_key(v: Any) -> Any:
    if not isinstance(v, Mapping):
        return repr(v)
    return v.get("target") or v.get("source")


def _path_key(v: Any) -> Any:
    return v.get("path") if isinstance(v, Mapping) else repr(v)


def _subnet_key(v: Any) -> Any:
    return v.get("subnet") if isinstance(v, Mapping) else repr(v)


_KEYED: dict[Path, Callable[[Any], Any]] = {
    ("services", "*", "ports"): _port_key,
    ("services", "*", "volumes"): _target_key,
    ("services", "*", "devices"): _target_key,  # compose-go merges devices by target
    ("services", "*", "configs"): _ref_key,
    ("services", "*", "secrets"): _ref_key,
    ("services", "*", "env_file"): _path_key,
    ("networks", "*", "ipam", "config"): _subnet_key,
}


def _matches(pattern: Path, path: Path) -> bool:
    return len(pattern) == len(path) and all(
        p in ("*", q) for p, q in zip(pattern, path, strict=True))


def merge(base: Any, override: Any, path: Path = ()) -> Any:
    """`override` merged onto `base` (neither is modified)."""
    if isinstance(override, Override):
        return strip_tags(override.value)
    if isinstance(override, Reset):
        return None
    if isinstance(base, Mapping) and isinstance(override, Mapping):
        out = PlacedDict(loc=base.loc if isinstance(base, PlacedDict) else None)
        for k, v in base.items():
            out.put(k, v, base.locs.get(k) if isinstance(base, PlacedDict) else None)
        for k, v in override.items():
            kloc = override.locs.get(k) if isinstance(override, PlacedDict) else None
            if isinstance(v, Reset):
                out.pop(k, None)
                continue
            merged = merge(out[k], v, (*path, str(k))) if k in out else strip_tags(v)
            out.put(k, merged, kloc)
        return out
    if isinstance(base, list) and isinstance(override, list):
        if any(_matches(p, path) for p in _REPLACED):
            return strip_tags(override)
        key = next((fn for p, fn in _KEYED.items() if _matches(p, path)), None)
        return _merge_list(base, override, key, path)
    return strip_tags(override)


def _merge_list(base: list[Any], override: list[Any], key: Callable[[Any], Any] | None,
                path: Path) -> PlacedList:
    ident = key or repr
    out = PlacedList(loc=base.loc if isinstance(base, PlacedList) else None)
    placed: dict[Any, int] = {}
    for i, item in enumerate(base):
        k = ident(item)
        if k in placed:
            continue
        placed[k] = len(out)
        out.put(item, base.locs.get(i) if isinstance(base, PlacedList) else None)
    for i, item in enumerate(override):
        if isinstance(item, Reset):
            continue
        item = strip_tags(item)
        loc = override.locs.get(i) if isinstance(override, PlacedList) else None
        k = ident(item)
        if k in placed:
            # Entries with the same identity merge (a later `read_only: true` on the same
            # target keeps the earlier source), as the spec's "unique resources" say.
            idx = placed[k]
            out[idx] = merge(out[idx], item, (*path, "*"))
            if loc is not None:
                out.locs[idx] = loc
        else:
            placed[k] = len(out)
            out.put(item, loc)
    return out


def strip_tags(value: Any) -> Any:
    """Drop `!reset` entries and unwrap `!override` values (for a document's own content)."""
    if isinstance(value, Override):
        return strip_tags(value.value)
    if isinstance(value, PlacedDict):
        out = PlacedDict(loc=value.loc)
        for k, v in value.items():
            if not isinstance(v, Reset):
                out.put(k, strip_tags(v), value.locs.get(k))
        return out
    if isinstance(value, PlacedList):
        lst = PlacedList(loc=value.loc)
        for i, v in enumerate(value):
            if not isinstance(v, Reset):
                lst.put(strip_tags(v), value.locs.get(i))
        return lst
    if isinstance(value, dict):
        return {k: strip_tags(v) for k, v in value.items() if not isinstance(v, Reset)}
    if isinstance(value, list):
        return [strip_tags(v) for v in value if not isinstance(v, Reset)]
    if isinstance(value, Reset):
        return None
    return value


def merge_all(docs: list[Any]) -> Any:
    """Merge documents in order; the first is the base."""
    result = strip_tags(docs[0])
    for doc in docs[1:]:
        result = merge(result, doc)
    return result
