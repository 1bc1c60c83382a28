"""Short syntax → long syntax, one file at a time (compose-go's "canonical" stage).

Every function here is pure and idempotent: feeding its output back gives the same
output, which is what lets `stackd config` round-trip and `Stack.model_validate` accept
both forms. Entries keep their file places as they move (a depends_on list item becomes
a map key with the item's place). Values of the wrong shape stop with a SpecError at
their place; values of the right shape but wrong content are left to the model.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel

from stackd.errors import Location, SpecError
from stackd.spec.yaml_positions import Override, PlacedDict, PlacedList, Reset, copy_placed

Where = Location | None


def where(container: Any, key: Any) -> Where:
    if isinstance(container, PlacedDict | PlacedList):
        return container.where(key)
    return None


def describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


def _scalar_text(value: Any, what: str, loc: Where) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise SpecError(f"{what} must be a string, not {describe(value)}", location=loc)


def _through(value: Any, fn: Callable[[Any, Where], Any], loc: Where) -> Any:
    """Apply `fn` inside an `!override`; leave `!reset` as it is."""
    if isinstance(value, Override):
        return Override(fn(value.value, loc), value.loc)
    if isinstance(value, Reset):
        return value
    return fn(value, loc)


def string_list(what: str) -> Callable[[Any, Where], Any]:
    """A string or a list of strings → a list of strings."""

    def convert(value: Any, loc: Where) -> Any:
        if value is None:
            return PlacedList(loc=loc)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            out = PlacedList(loc=loc)
            out.put(str(value), loc)
            return out
        if not isinstance(value, list | tuple):
            raise SpecError(f"{what} must be a string or a list, not {describe(value)}",
                            location=loc)
        out = PlacedList(loc=loc)
        for i, item in enumerate(value):
            out.put(_scalar_text(item, f"each entry of {what}", where(value, i) or loc),
                    where(value, i))
        return out

    return convert


def key_value_map(what: str, sep: str = "=", allow_unset: bool = True
                  ) -> Callable[[Any, Where], Any]:
    """A list of "k=v" (or "k") or a mapping → a mapping of strings (None: unset)."""

    def convert(value: Any, loc: Where) -> Any:
        out = PlacedDict(loc=loc)
        if value is None:
            return out
        if isinstance(value, list | tuple):
            for i, item in enumerate(value):
                iloc = where(value, i) or loc
                text = _scalar_text(item, f"each entry of {what}", iloc)
                key, found, val = text.partition(sep)
                if not key:
                    raise SpecError(f"{what} entry {text!r} has no name", location=iloc)
                # A bare name: unset (environment) or empty (labels, sysctls…).
                out.put(key, val if found else (None if allow_unset else ""), iloc)
            return out
        if isinstance(value, Mapping):
            for k, v in value.items():
                kloc = where(value, k) or loc
                if isinstance(v, Reset | Override):
                    out.put(str(k), v, kloc)
                elif v is None:
                    out.put(str(k), None if allow_unset else "", kloc)
                else:
                    out.put(str(k), _scalar_text(v, f"{what} value of {k!r}", kloc), kloc)
            return out
        raise SpecError(f"{what} must be a list or a mapping, not {describe(value)}",
                        location=loc)

    return convert


def command_form(what: str) -> Callable[[Any, Where], Any]:
    """A string (split with shell-word rules) or a list → a list of strings."""

    def convert(value: Any, loc: Where) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            try:
                words = shlex.split(value)
            except ValueError as exc:
                raise SpecError(f"{what} {value!r} cannot be split into words: {exc}",
                                location=loc, hint="close the quote or write a list") from None
            out = PlacedList(loc=loc)
            for w in words:
                out.put(w, loc)
            return out
        return string_list(what)(value, loc)

    return convert


def mapping(what: str, value: Any, loc: Where) -> PlacedDict:
    if value is None:
        return PlacedDict(loc=loc)
    if not isinstance(value, Mapping):
        raise SpecError(f"{what} must be a mapping, not {describe(value)}", location=loc)
    return copy_placed(value)


def _convert_keys(value: Any, loc: Where, what: str,
                  converters: Mapping[str, Callable[[Any, Where], Any]]) -> Any:
    if isinstance(value, Reset | BaseModel):
        return value
    if isinstance(value, Override):
        return Override(_convert_keys(value.value, loc, what, converters), value.loc)
    out = mapping(what, value, loc)
    for key, fn in converters.items():
        if key in out:
            out[key] = _through(out[key], fn, out.where(key))
    return out


# ------------------------------------------------------------------------------ ports

_PROTO = ("tcp", "udp", "sctp")


def _port_range(text: str, loc: Where, spec: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d{1,5})(?:-(\d{1,5}))?", text)
    if m is None:
        raise SpecError(f"port {spec!r}: {text!r} is not a port or a port range",
                        location=loc, hint="write it like 8080:80, 127.0.0.1:8080:80/udp")
    lo = int(m.group(1))
    hi = int(m.group(2) or lo)
    if hi < lo or hi > 65535:
        raise SpecError(f"port {spec!r}: {text!r} is not a valid range", location=loc)
    return lo, hi


def parse_port(spec: str, loc: Where) -> list[dict[str, Any]]:
    """`[ip:][host[-range]:]container[-range][/proto]` → long-syntax entries."""
    body, _, proto = spec.partition("/")
    proto = proto or "tcp"
    if proto not in _PROTO:
        raise SpecError(f"port {spec!r}: protocol must be tcp, udp or sctp", location=loc)
    host_ip: str | None = None
    if body.startswith("["):
        end = body.find("]")
        if end < 0 or body[end + 1:end + 2] != ":":
            raise SpecError(f"port {spec!r}: unclosed IPv6 address", location=loc)
        host_ip, body = body[1:end], body[end + 2:]
        published, found, target = body.partition(":")
        if not found:
            raise SpecError(f"port {spec!r}: write it as [ip]:host:container", location=loc)
    else:
        parts = body.split(":")
        if len(parts) == 1:
            published, target = "", parts[0]
        elif len(parts) == 2:
            published, target = parts
        else:
            host_ip, published, target = ":".join(parts[:-2]), parts[-2], parts[-1]
    if host_ip is not None:
        try:
            ipaddress.ip_address(host_ip)
        except ValueError:
            raise SpecError(f"port {spec!r}: {host_ip!r} is not an IP address", location=loc,
                            hint="write it like 8080:80, 127.0.0.1:8080:80/udp") from None
    t_lo, t_hi = _port_range(target, loc, spec)
    entries: list[dict[str, Any]] = []
    if published:
        p_lo, p_hi = _port_range(published, loc, spec)
        if t_hi != t_lo:
            if p_hi - p_lo != t_hi - t_lo:
                raise SpecError(f"port {spec!r}: host and container ranges differ in size",
                                location=loc)
            for i in range(t_hi - t_lo + 1):
                entries.append({"target": t_lo + i, "published": str(p_lo + i)})
        else:
            entries.append({"target": t_lo,
                            "published": str(p_lo) if p_hi == p_lo else f"{p_lo}-{p_hi}"})
    else:
        for t in range(t_lo, t_hi + 1):
            entries.append({"target": t})
    for e in entries:
        e["protocol"] = proto
        if host_ip:
            e["host_ip"] = host_ip
    return entries


def _ports(value: Any, loc: Where) -> Any:
    if not isinstance(value, list | tuple):
        raise SpecError(f"ports must be a list, not {describe(value)}", location=loc)
    out = PlacedList(loc=loc)
    for i, item in enumerate(value):
        iloc = where(value, i) or loc
        if isinstance(item, int) and not isinstance(item, bool):
            item = str(item)
        if isinstance(item, BaseModel):
            out.put(item, iloc)
        elif isinstance(item, str):
            for entry in parse_port(item, iloc):
                d = PlacedDict(loc=iloc)
                for k, v in entry.items():
                    d.put(k, v, iloc)
                out.put(d, iloc)
        elif isinstance(item, Mapping):
            d = copy_placed(item)
            if isinstance(d.get("target"), str) and d["target"].isdigit():
                d["target"] = int(d["target"])
            if isinstance(d.get("published"), int) and not isinstance(d["published"], bool):
                d["published"] = str(d["published"])
            out.put(d, iloc)
        else:
            raise SpecError(f"each port must be a string or a mapping, not {describe(item)}",
                            location=iloc)
    return out


# ---------------------------------------------------------------------------- volumes

_PROPAGATION = ("shared", "rshared", "slave", "rslave", "private", "rprivate")


def is_bind_source(source: str) -> bool:
    return source.startswith(("/", ".", "~")) or source in (".", "..")


def parse_volume(spec: str, loc: Where) -> PlacedDict:
    """`src:dst[:opts]` or `dst` → long syntax (bind when src looks like a path)."""
    parts = spec.split(":")
    out = PlacedDict(loc=loc)
    if len(parts) == 1:
        out.put("type", "volume", loc)
        out.put("target", parts[0], loc)
        return out
    if len(parts) > 3:
        raise SpecError(f"volume {spec!r} has too many ':'", location=loc,
                        hint="write it as source:target[:ro|rw|z|Z]")
    source, target = parts[0], parts[1]
    opts = parts[2].split(",") if len(parts) == 3 else []
    if not source or not target:
        raise SpecError(f"volume {spec!r} needs both a source and a target", location=loc)
    kind = "bind" if is_bind_source(source) else "volume"
    out.put("type", kind, loc)
    out.put("source", source, loc)
    out.put("target", target, loc)
    bind: dict[str, Any] = {}
    vol: dict[str, Any] = {}
    for opt in _split_selinux(opts):
        if opt == "ro":
            out.put("read_only", True, loc)
        elif opt == "rw":
            pass
        elif opt in ("z", "Z"):
            # SELinux relabelling: Compose accepts it on volumes too; a no-op on hosts
            # without SELinux (all this runtime supports today, see docs/security.md).
            if kind == "bind":
                bind["selinux"] = opt
        elif opt in _PROPAGATION and kind == "bind":
            bind["propagation"] = opt
        elif opt == "nocopy" and kind == "volume":
            vol["nocopy"] = True
        elif opt in ("cached", "delegated", "consistent"):
            # Docker Desktop's file-sharing hints (macOS); Compose keeps them as
            # `consistency` and Linux ignores them, as stackd does.
            out.put("consistency", opt, loc)
        else:
            raise SpecError(f"volume {spec!r}: unknown option {opt!r}", location=loc,
                            hint="options are ro, rw, z, Z, cached, delegated, consistent, "
                            "a propagation (binds) and nocopy (volumes)")
    if bind:
        out.put("bind", bind, loc)
    if vol:
        out.put("volume", vol, loc)
    return out


def _split_selinux(opts: list[str]) -> list[str]:
    """`roz`, `rwZ` (written without a comma in many real files) → `ro`, `z`."""
    out: list[str] = []
    for opt in opts:
        if len(opt) == 3 and opt[:2] in ("ro", "rw") and opt[2] in "zZ":
            out += [opt[:2], opt[2]]
        else:
            out.append(opt)
    return out


def _volumes(value: Any, loc: Where) -> Any:
    if not isinstance(value, list | tuple):
        raise SpecError(f"volumes must be a list, not {describe(value)}", location=loc)
    out = PlacedList(loc=loc)
    for i, item in enumerate(value):
        iloc = where(value, i) or loc
        if isinstance(item, BaseModel):
            out.put(item, iloc)
        elif isinstance(item, str):
            out.put(parse_volume(item, iloc), iloc)
        elif isinstance(item, Mapping):
            if item.get("type") == "image":
                raise SpecError("volume type 'image' is not supported yet",
                                location=where(item, "type") or iloc,
                                hint="image volumes are not mounted: copy the files in a "
                                "build stage, or use a named volume")
            d = _convert_keys(item, iloc, "a volume", {"tmpfs": _mapping_of("tmpfs")})
            out.put(d, iloc)
        else:
            raise SpecError(
                f"each volume must be a string or a mapping, not {describe(item)}",
                location=iloc)
    return out


def _mapping_of(what: str) -> Callable[[Any, Where], Any]:
    def convert(value: Any, loc: Where) -> Any:
        return mapping(what, value, loc)

    return convert


# ------------------------------------------------------------------ depends_on & co.


def _depends_on(value: Any, loc: Where) -> Any:
    out = PlacedDict(loc=loc)
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            iloc = where(value, i) or loc
            if not isinstance(item, str):
                raise SpecError(f"depends_on entries must be service names, not "
                                f"{describe(item)}", location=iloc)
            out.put(item, {"condition": "service_started"}, iloc)
        return out
    if isinstance(value, Mapping):
        for k, v in value.items():
            kloc = where(value, k) or loc
            if isinstance(v, Reset | Override | BaseModel):
                out.put(k, v, kloc)
            else:
                out.put(k, mapping(f"depends_on {k!r}", v, kloc), kloc)
        return out
    raise SpecError(f"depends_on must be a list or a mapping, not {describe(value)}",
                    location=loc)


def _networks(value: Any, loc: Where) -> Any:
    out = PlacedDict(loc=loc)
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            iloc = where(value, i) or loc
            if not isinstance(item, str):
                raise SpecError(f"networks entries must be network names, not "
                                f"{describe(item)}", location=iloc)
            out.put(item, PlacedDict(loc=iloc), iloc)
        return out
    if isinstance(value, Mapping):
        for k, v in value.items():
            kloc = where(value, k) or loc
            if isinstance(v, Reset | Override):
                out.put(k, v, kloc)
            else:
                out.put(k, _convert_keys(v, kloc, f"network {k!r}",
                                         {"aliases": string_list("aliases")}), kloc)
        return out
    raise SpecError(f"networks must be a list or a mapping, not {describe(value)}",
                    location=loc)


def _list_of(what: str, noun: str, hint: str, item: str,
             converters: Mapping[str, Callable[[Any, Where], Any]]
             ) -> Callable[[Any, Where], Any]:
    """A list of mappings (hooks, watch rules), each converted as `_convert_keys` does."""

    def convert(value: Any, loc: Where) -> Any:
        if isinstance(value, Reset | BaseModel):
            return value
        if not isinstance(value, list | tuple):
            raise SpecError(f"{what} must be a list of {noun}, not {describe(value)}",
                            location=loc, hint=hint)
        out = PlacedList(loc=loc)
        for i, entry in enumerate(value):
            iloc = value.where(i) if isinstance(value, PlacedList) else loc
            out.put(_convert_keys(entry, iloc, item, converters), iloc)
        return out

    return convert


def _hooks(what: str) -> Callable[[Any, Where], Any]:
    """`post_start:`/`pre_stop:`: a list of hooks, each's command in list form."""
    return _list_of(what, "hooks", "- command: [sh, -c, '…']", f"a {what} hook", {
        "command": command_form(f"{what} command"),
        "environment": key_value_map(f"{what} environment")})


def _develop(value: Any, loc: Where) -> Any:
    """`develop:` — its `watch:` rules, each's lists and `exec` in long form."""
    watch = _list_of("develop.watch", "rules", "- {action: sync, path: ./src, target: /app}",
                     "a develop.watch rule", {
                         "ignore": string_list("develop.watch ignore"),
                         "include": string_list("develop.watch include"),
                         "exec": lambda e, eloc: _convert_keys(e, eloc, "develop.watch exec", {
                             "command": command_form("develop.watch exec command"),
                             "environment": key_value_map("develop.watch exec environment")}),
                     })
    return _convert_keys(value, loc, "develop", {"watch": watch})


def _healthcheck(value: Any, loc: Where) -> Any:
    def test(v: Any, tloc: Where) -> Any:
        if isinstance(v, str):
            out = PlacedList(loc=tloc)
            if v == "NONE":
                out.put("NONE", tloc)
            else:
                out.put("CMD-SHELL", tloc)
                out.put(v, tloc)
            return out
        return string_list("healthcheck test")(v, tloc)

    return _convert_keys(value, loc, "healthcheck", {"test": test})


def _ulimits(value: Any, loc: Where) -> Any:
    out = mapping("ulimits", value, loc)
    for k, v in list(out.items()):
        if isinstance(v, int) and not isinstance(v, bool):
            out[k] = {"soft": v, "hard": v}
    return out


def _extra_hosts(value: Any, loc: Where) -> Any:
    out = PlacedList(loc=loc)
    if isinstance(value, Mapping):
        for host, ips in value.items():
            kloc = where(value, host) or loc
            for ip in string_list(f"extra_hosts {host!r}")(ips, kloc):
                out.put(f"{host}={ip}", kloc)
        return out
    for i, item in enumerate(string_list("extra_hosts")(value, loc)):
        iloc = where(value, i) or loc
        if "=" in item:
            host, _, ip = item.partition("=")
        else:
            host, _, ip = item.partition(":")
        if not host or not ip:
            raise SpecError(f"extra_hosts entry {item!r} must look like host=ip", location=iloc)
        out.put(f"{host}={ip.strip('[]')}", iloc)
    return out


def _env_file(value: Any, loc: Where) -> Any:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        raise SpecError(f"env_file must be a string or a list, not {describe(value)}",
                        location=loc)
    out = PlacedList(loc=loc)
    for i, item in enumerate(value):
        iloc = where(value, i) or loc
        if isinstance(item, BaseModel):
            out.put(item, iloc)
        elif isinstance(item, str):
            out.put({"path": item}, iloc)
        elif isinstance(item, Mapping):
            out.put(copy_placed(item), iloc)
        else:
            raise SpecError(f"env_file entries must be paths, not {describe(item)}",
                            location=iloc)
    return out


def _label_file(value: Any, loc: Where) -> Any:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise SpecError(f"label_file must be a path or a list of paths, not "
                        f"{describe(value)}", location=loc)
    return PlacedList(value, loc=loc) if not isinstance(value, PlacedList) else value


def _file_refs(what: str) -> Callable[[Any, Where], Any]:
    def convert(value: Any, loc: Where) -> Any:
        if not isinstance(value, list | tuple):
            raise SpecError(f"{what} must be a list, not {describe(value)}", location=loc)
        out = PlacedList(loc=loc)
        for i, item in enumerate(value):
            iloc = where(value, i) or loc
            if isinstance(item, BaseModel):
                out.put(item, iloc)
            elif isinstance(item, str):
                out.put({"source": item}, iloc)
            elif isinstance(item, Mapping):
                out.put(copy_placed(item), iloc)
            else:
                raise SpecError(f"{what} entries must be names or mappings, not "
                                f"{describe(item)}", location=iloc)
        return out

    return convert


def _devices(value: Any, loc: Where) -> Any:
    """`/dev/fuse`, `/dev/sda:/dev/xvda:r` or {source, target, permissions} → long form."""
    if not isinstance(value, list | tuple):
        raise SpecError(f"devices must be a list, not {describe(value)}", location=loc)
    out = PlacedList(loc=loc)
    for i, item in enumerate(value):
        iloc = where(value, i) or loc
        if isinstance(item, BaseModel):
            out.put(item, iloc)
        elif isinstance(item, str):
            parts = item.split(":")
            if len(parts) > 3 or not parts[0]:
                raise SpecError(f"device {item!r} must look like HOST[:CONTAINER[:rwm]]",
                                location=iloc)
            source, target, perms = parts[0], parts[0], "rwm"
            if len(parts) == 3:
                target, perms = parts[1], parts[2]
            elif len(parts) == 2 and re.fullmatch(r"[rwm]{1,3}", parts[1]):
                perms = parts[1]  # `/dev/sda:r`: the same path, these permissions
            elif len(parts) == 2:
                target = parts[1]
            d = PlacedDict(loc=iloc)
            d.put("source", source, iloc)
            d.put("target", target, iloc)
            d.put("permissions", perms, iloc)
            out.put(d, iloc)
        elif isinstance(item, Mapping):
            d = copy_placed(item)
            if "target" not in d and isinstance(d.get("source"), str):
                d.put("target", d["source"], iloc)
            out.put(d, iloc)
        else:
            raise SpecError(f"each device must be a string or a mapping, not "
                            f"{describe(item)}", location=iloc)
    return out


def _build(value: Any, loc: Where) -> Any:
    if isinstance(value, str):
        out = PlacedDict(loc=loc)
        out.put("context", value, loc)
        return out
    return _convert_keys(value, loc, "build", {
        "args": key_value_map("build args"),
        "additional_contexts": key_value_map("build additional_contexts", allow_unset=False),
        "labels": key_value_map("build labels", allow_unset=False),
        "tags": string_list("build tags"),
        "cache_from": string_list("build cache_from"),
        "cache_to": string_list("build cache_to"),
        "platforms": string_list("build platforms"),
        "secrets": _file_refs("build secrets"),
        "extra_hosts": _extra_hosts,
        "ulimits": _ulimits,
    })


def _resources(value: Any, loc: Where) -> Any:
    return _convert_keys(value, loc, "deploy resources", {
        "limits": _mapping_of("resource limits"),
        "reservations": _mapping_of("resource reservations"),
    })


def _deploy(value: Any, loc: Where) -> Any:
    return _convert_keys(value, loc, "deploy", {
        "labels": key_value_map("deploy labels", allow_unset=False),
        "resources": _resources,
    })


def _logging(value: Any, loc: Where) -> Any:
    return _convert_keys(value, loc, "logging", {
        "options": key_value_map("logging options", allow_unset=False)})


SERVICE_KEYS: dict[str, Callable[[Any, Where], Any]] = {
    "build": _build,
    "command": command_form("command"),
    "entrypoint": command_form("entrypoint"),
    "environment": key_value_map("environment"),
    "env_file": _env_file,
    "label_file": _label_file,
    "labels": key_value_map("labels", allow_unset=False),
    "annotations": key_value_map("annotations", allow_unset=False),
    "ports": _ports,
    "expose": string_list("expose"),
    "networks": _networks,
    "volumes": _volumes,
    "tmpfs": string_list("tmpfs"),
    "devices": _devices,
    "depends_on": _depends_on,
    "healthcheck": _healthcheck,
    "develop": _develop,
    "post_start": _hooks("post_start"),
    "pre_stop": _hooks("pre_stop"),
    "deploy": _deploy,
    "ulimits": _ulimits,
    "cap_add": string_list("cap_add"),
    "cap_drop": string_list("cap_drop"),
    "security_opt": string_list("security_opt"),
    "sysctls": key_value_map("sysctls", allow_unset=False),
    "logging": _logging,
    "extra_hosts": _extra_hosts,
    "dns": string_list("dns"),
    "dns_search": string_list("dns_search"),
    "dns_opt": string_list("dns_opt"),
    "links": string_list("links"),
    "volumes_from": string_list("volumes_from"),
    "group_add": string_list("group_add"),
    "profiles": string_list("profiles"),
    "configs": _file_refs("configs"),
    "secrets": _file_refs("secrets"),
}


def canonical_service(name: str, value: Any, loc: Where) -> Any:
    if isinstance(value, Reset | BaseModel):  # a model instance is in long form already
        return value
    if isinstance(value, Override):
        return Override(canonical_service(name, value.value, loc), value.loc)
    out = mapping(f"service {name!r}", value, loc)
    for key, fn in SERVICE_KEYS.items():
        if key in out and out[key] is not None:
            try:
                out[key] = _through(out[key], fn, out.where(key))
            except SpecError as exc:
                if name and not exc.message.startswith("service "):
                    exc.message = f"service {name!r}: {exc.message}"
                raise
    return out


def _legacy_external(value: Any) -> Any:
    """`external: {name: x}` (the v3 file format, still in real files such as
    big-data-europe/docker-hadoop's) → `external: true` and `name: x`, as compose-go
    reads it."""
    if not isinstance(value, Mapping) or not isinstance(value.get("external"), Mapping):
        return value
    out = copy_placed(value)
    ext = value["external"]
    unknown = sorted(set(map(str, ext)) - {"name"})
    if unknown:
        raise SpecError(f"external: unknown key {unknown[0]!r}",
                        location=where(value, "external"),
                        hint="external is true or false; the name goes in name:")
    if "name" in ext:
        if value.get("name") not in (None, ext["name"]):
            raise SpecError("external.name and name disagree", location=where(value, "name"),
                            hint="keep name: only")
        out["name"] = ext["name"]
    out["external"] = True
    return out


def _network(value: Any, loc: Where) -> Any:
    def ipam(v: Any, iloc: Where) -> Any:
        return _convert_keys(v, iloc, "ipam", {"options": key_value_map("ipam options")})

    return _convert_keys(_legacy_external(value), loc, "network", {
        "labels": key_value_map("labels", allow_unset=False),
        "driver_opts": key_value_map("driver_opts", allow_unset=False),
        "ipam": ipam,
    })


def _volume(value: Any, loc: Where) -> Any:
    return _convert_keys(_legacy_external(value), loc, "volume", {
        "labels": key_value_map("labels", allow_unset=False),
        "driver_opts": key_value_map("driver_opts", allow_unset=False),
    })


def _file_object(value: Any, loc: Where) -> Any:
    return _convert_keys(_legacy_external(value), loc, "definition", {
        "labels": key_value_map("labels", allow_unset=False)})


SECTIONS: dict[str, Callable[[Any, Where], Any]] = {
    "networks": _network,
    "volumes": _volume,
    "configs": _file_object,
    "secrets": _file_object,
}

_SINGULAR = {"networks": "network", "volumes": "volume", "configs": "config",
             "secrets": "secret", "services": "service"}


def canonical_stack(doc: Mapping[str, Any]) -> PlacedDict:
    """A whole document (one file, or a merged stack) → canonical form."""
    out = copy_placed(doc)
    out.pop("version", None)  # obsolete in the compose spec; compose ignores it too
    for section in ("services", *SECTIONS):
        if section not in out:
            continue
        value = out[section]
        sloc = out.where(section)
        if isinstance(value, Reset):
            continue
        if isinstance(value, Override):
            value = value.value
        entries = mapping(section, value, sloc)
        for name, entry in list(entries.items()):
            eloc = entries.where(name)
            if not isinstance(name, str) or not name:
                raise SpecError(f"{section} names must be non-empty strings", location=eloc)
            if section == "services":
                entries[name] = canonical_service(name, entry, eloc)
            elif isinstance(entry, BaseModel):
                continue
            elif entry is None:
                entries[name] = PlacedDict(loc=eloc)
            else:
                try:
                    entries[name] = _through(entry, SECTIONS[section], eloc)
                except SpecError as exc:
                    exc.message = f"{_SINGULAR[section]} {name!r}: {exc.message}"
                    raise
        out[section] = entries if not isinstance(out[section], Override) else Override(
            entries, out[section].loc)
    return out
