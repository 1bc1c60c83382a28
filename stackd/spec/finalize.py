"""The last stages on the merged document: profiles, env files, implied defaults, references.

- profiles: a service with `profiles:` is kept only when one of them is enabled ("*"
  enables all);
- env_file contents are read into `environment` (explicit entries win), and bare
  `environment: [NAME]` entries take their value from the shell/.env when set;
- a service with neither `networks` nor `network_mode` joins the `default` network,
  which is then declared at the top level, as compose does;
- every name a service refers to (depends_on, networks, named volumes, configs,
  secrets, network_mode service:, volumes_from, links) must exist.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from stackd.errors import SpecError
from stackd.spec.canonical import where
from stackd.spec.dotenv import parse_dotenv, parse_raw_env
from stackd.spec.yaml_positions import PlacedDict, copy_placed

ReadText = Callable[[str], str]


def _services(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    services = doc.get("services")
    return services if isinstance(services, Mapping) else {}


def apply_profiles(
    doc: Mapping[str, Any], enabled: Iterable[str], targeted: Iterable[str] = ()
) -> tuple[PlacedDict, dict[str, tuple[str, ...]]]:
    """Drop services whose profiles are all disabled; also return what was dropped.

    targeted: services named on the command line; each one's profiles are enabled
    (Compose's rule: the others of those profiles come with it, to be started only if
    named or needed)."""
    on = set(enabled)
    services = _services(doc)
    for name in targeted:
        svc = services.get(name)
        profiles = svc.get("profiles") if isinstance(svc, Mapping) else None
        if isinstance(profiles, list):
            on.update(map(str, profiles))
    out = copy_placed(doc)
    kept = PlacedDict(loc=getattr(doc.get("services"), "loc", None))
    dropped: dict[str, tuple[str, ...]] = {}
    for name, svc in services.items():
        profiles = svc.get("profiles") if isinstance(svc, Mapping) else None
        if profiles and "*" not in on and not on.intersection(map(str, profiles)):
            dropped[name] = tuple(map(str, profiles))
            continue
        kept.put(name, svc, where(services, name))
    if "services" in out:
        out["services"] = kept
    return out, dropped


def _writing(doc: Mapping[str, Any], key: str) -> dict[str, Mapping[str, Any]]:
    """The services that write `key`, by name."""
    return {name: svc for name, svc in _services(doc).items()
            if isinstance(svc, Mapping) and key in svc}


# An env_file entry's `format:` (none, compose's .env syntax, or docker run's raw lines).
ENV_FILE_FORMATS = {"": parse_dotenv, ".env": parse_dotenv, "raw": parse_raw_env}


def resolve_environment(doc: Mapping[str, Any], variables: Mapping[str, str],
                        read_text: ReadText) -> PlacedDict:
    out = copy_placed(doc)
    services = _services(doc)
    if not services:
        return out
    new = copy_placed(services)
    for name, svc in services.items():
        if not isinstance(svc, Mapping):
            continue
        env_files = svc.get("env_file") or []
        environment = svc.get("environment") or {}
        if not isinstance(env_files, list) or not isinstance(environment, Mapping):
            continue
        merged = PlacedDict(loc=getattr(environment, "loc", None))
        for i, entry in enumerate(env_files):
            if not isinstance(entry, Mapping) or not isinstance(entry.get("path"), str):
                continue
            path = entry["path"]
            fmt = entry.get("format")
            parse = ENV_FILE_FORMATS.get(fmt if isinstance(fmt, str) else "")
            if parse is None:
                raise SpecError(f"service {name!r}: env_file {path!r}: unsupported "
                                f"format {fmt!r}", location=where(env_files, i),
                                hint="give raw (docker run's --env-file lines), or leave "
                                     "format out (.env syntax)")
            try:
                text = read_text(path)
            except FileNotFoundError:
                if entry.get("required", True) is False:
                    continue
                raise SpecError(f"service {name!r}: env_file {path!r} does not exist",
                                location=where(env_files, i),
                                hint="create it, or mark it `required: false`") from None
            except OSError as exc:
                raise SpecError(f"service {name!r}: cannot read env_file {path!r}: "
                                f"{exc.strerror}", location=where(env_files, i)) from None
            for k, v in parse(text, path, variables).items():
                merged.put(k, v, where(env_files, i))
        for k, v in environment.items():
            if v is None and k in variables:
                v = variables[k]
            merged.put(k, v, where(environment, k))
        if merged or "environment" in svc:
            s = copy_placed(svc)
            s["environment"] = merged
            new[name] = s
    out["services"] = new
    return out


def resolve_label_files(doc: Mapping[str, Any], read_text: ReadText) -> PlacedDict:
    """`label_file:` read into `labels` (the service's own labels win), then dropped, as
    Compose resolves it: KEY=VALUE lines, # comments, no interpolation."""
    out = copy_placed(doc)
    having = _writing(doc, "label_file")
    if not having:
        return out
    new = copy_placed(_services(doc))
    for name, svc in having.items():
        files = svc["label_file"]
        files = [files] if isinstance(files, str) else files
        labels = svc.get("labels") or {}
        merged = PlacedDict(loc=getattr(labels, "loc", None))
        for i, path in enumerate(files if isinstance(files, list) else []):
            if not isinstance(path, str):
                continue
            try:
                text = read_text(path)
            except FileNotFoundError:
                raise SpecError(f"service {name!r}: label_file {path!r} does not exist",
                                location=where(files, i), hint="create it") from None
            except OSError as exc:
                raise SpecError(f"service {name!r}: cannot read label_file {path!r}: "
                                f"{exc.strerror}", location=where(files, i)) from None
            for k, v in parse_dotenv(text, path, {}).items():
                merged.put(k, v, where(files, i))
        if isinstance(labels, Mapping):
            for k, v in labels.items():
                merged.put(k, v, where(labels, k))
        s = copy_placed(svc)
        del s["label_file"]
        s["labels"] = merged
        new[name] = s
    out["services"] = new
    return out


def add_default_network(doc: Mapping[str, Any]) -> PlacedDict:
    out = copy_placed(doc)
    services = _services(doc)
    uses_default = False
    new = copy_placed(services) if services else None
    for name, svc in services.items():
        if not isinstance(svc, Mapping):
            continue
        if svc.get("network_mode") is None and not svc.get("networks"):
            s = copy_placed(svc)
            s["networks"] = {"default": {}}
            assert new is not None
            new[name] = s
            uses_default = True
        elif isinstance(svc.get("networks"), Mapping) and "default" in svc["networks"]:
            uses_default = True
    if new is not None:
        out["services"] = new
    networks = out.get("networks")
    if uses_default and not (isinstance(networks, Mapping) and "default" in networks):
        nets = copy_placed(networks) if isinstance(networks, Mapping) else PlacedDict()
        nets["default"] = {}
        out["networks"] = nets
    return out


def check_references(doc: Mapping[str, Any], dropped: Mapping[str, tuple[str, ...]]) -> PlacedDict:
    """Refuse names that point nowhere; drop `required: false` dependencies that do."""
    out = copy_placed(doc)
    services = _services(doc)

    def section(key: str) -> Mapping[str, Any]:
        value = doc.get(key)
        return value if isinstance(value, Mapping) else {}

    networks, volumes = section("networks"), section("volumes")
    configs, secrets = section("configs"), section("secrets")

    def missing_service(name: str, what: str, target: str, loc: Any) -> SpecError:
        if target in dropped:
            return SpecError(
                f"service {name!r} {what} {target!r}, which is only in profile(s) "
                f"{', '.join(dropped[target])}", location=loc,
                hint=f"enable one with --profile {dropped[target][0]}")
        return SpecError(f"service {name!r} {what} {target!r}, which is not defined",
                         location=loc, hint=_did_you_mean(target, services))

    new = copy_placed(services) if services else None
    for name, svc in services.items():
        if not isinstance(svc, Mapping):
            continue
        if svc.get("image") is None and svc.get("build") is None:
            raise SpecError(f"service {name!r} has neither an image nor a build",
                            location=where(services, name),
                            hint="add `image: NAME` or `build: DIR`")
        deps = svc.get("depends_on")
        if isinstance(deps, Mapping):
            kept = PlacedDict(loc=getattr(deps, "loc", None))
            for target, dep in deps.items():
                loc = where(deps, target)
                if target == name:
                    raise SpecError(f"service {name!r} depends on itself", location=loc)
                if target not in services:
                    if isinstance(dep, Mapping) and dep.get("required") is False:
                        continue
                    raise missing_service(name, "depends on", target, loc)
                kept.put(target, dep, loc)
            if len(kept) != len(deps):
                s = copy_placed(svc)
                s["depends_on"] = kept
                assert new is not None
                new[name] = s
        nets = svc.get("networks")
        if isinstance(nets, Mapping):
            for net in nets:
                if net not in networks and net != "default":  # default is implied
                    raise SpecError(
                        f"service {name!r} uses network {net!r}, which is not declared",
                        location=where(nets, net),
                        hint=_did_you_mean(net, networks)
                        or f"declare it under the top-level networks: ({net}: {{}})")
        for key, what in (("network_mode", "shares the network of"),
                          ("pid", "shares the process namespace of"),
                          ("ipc", "shares the IPC namespace of")):
            mode = svc.get(key)
            if isinstance(mode, str) and mode.startswith("service:"):
                target = mode.partition(":")[2]
                if target not in services:
                    raise missing_service(name, what, target, where(svc, key))
        for key, what in (("volumes_from", "takes volumes from"), ("links", "links to")):
            refs = svc.get(key)
            if isinstance(refs, list):
                for i, ref in enumerate(refs):
                    if not isinstance(ref, str) or ref.startswith("container:"):
                        continue
                    target = ref.split(":")[0]
                    if target not in services:
                        raise missing_service(name, what, target, where(refs, i))
        vols = svc.get("volumes")
        if isinstance(vols, list):
            for i, v in enumerate(vols):
                if (isinstance(v, Mapping) and v.get("type") == "volume"
                        and isinstance(v.get("source"), str) and v["source"] not in volumes):
                    raise SpecError(
                        f"service {name!r} mounts volume {v['source']!r}, which is not "
                        "declared", location=where(vols, i),
                        hint=_did_you_mean(v["source"], volumes) or
                        f"declare it under the top-level volumes: ({v['source']}: {{}}), "
                        "or write ./path for a bind mount")
        for key, declared in (("configs", configs), ("secrets", secrets)):
            refs = svc.get(key)
            if isinstance(refs, list):
                for i, ref in enumerate(refs):
                    if isinstance(ref, Mapping) and ref.get("source") not in declared:
                        raise SpecError(
                            f"service {name!r} uses {key[:-1]} {ref.get('source')!r}, which "
                            "is not declared", location=where(refs, i),
                            hint=f"declare it under the top-level {key}:")
    if new is not None:
        out["services"] = new
    return out


def _did_you_mean(name: str, known: Iterable[str]) -> str | None:
    import difflib

    close = difflib.get_close_matches(name, [str(k) for k in known], n=1)
    return f"did you mean {close[0]!r}?" if close else None
