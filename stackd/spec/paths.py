"""Relative paths in a stack become absolute, against the directory they were written for.

Compose resolves build contexts, env files, bind-mount sources, config/secret files,
`develop.watch` paths and a local volume's bind `device` against the project directory
— or, for a base service pulled in by `extends` from another file and for `include`d
projects, against that file's directory. Absolute paths are left alone, so doing this
twice changes nothing.
"""

from __future__ import annotations

import os.path
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stackd.spec.canonical import where
from stackd.spec.yaml_positions import PlacedList, copy_placed


def absolute(path: str, base: Path, home: str | None) -> str:
    if path.startswith("~") and home:
        path = home + path[1:]
    if os.path.isabs(path):
        return os.path.normpath(path)
    return os.path.normpath(os.path.join(base, path))


def _is_remote(context: str) -> bool:
    return "://" in context or context.startswith(("git@", "github.com/"))


def absolutize_service(service: Any, base: Path, home: str | None) -> Any:
    if not isinstance(service, Mapping):
        return service
    out = copy_placed(service)
    build = out.get("build")
    if (isinstance(build, Mapping) and isinstance(build.get("context"), str)
            and not _is_remote(build["context"])):
        b = copy_placed(build)
        b["context"] = absolute(build["context"], base, home)
        out["build"] = b
    if isinstance(build, Mapping) and isinstance(build.get("additional_contexts"), Mapping):
        b = copy_placed(out["build"])
        named = copy_placed(build["additional_contexts"])
        for name, value in build["additional_contexts"].items():
            if isinstance(value, str) and not _is_remote(value) \
                    and not value.startswith(("service:", "target:")):
                named[name] = absolute(value, base, home)
        b["additional_contexts"] = named
        out["build"] = b
    env_files = out.get("env_file")
    if isinstance(env_files, list):
        out["env_file"] = _paths_in(env_files, "path", base, home)
    label_files = out.get("label_file")
    if isinstance(label_files, list):
        lst = PlacedList(loc=label_files.loc if isinstance(label_files, PlacedList) else None)
        for i, f in enumerate(label_files):
            lst.put(absolute(f, base, home) if isinstance(f, str) else f,
                    where(label_files, i))
        out["label_file"] = lst
    elif isinstance(label_files, str):
        out["label_file"] = absolute(label_files, base, home)
    develop = out.get("develop")
    if isinstance(develop, Mapping) and isinstance(develop.get("watch"), list):
        d = copy_placed(develop)
        d["watch"] = _paths_in(develop["watch"], "path", base, home)
        out["develop"] = d
    volumes = out.get("volumes")
    if isinstance(volumes, list):
        lst = PlacedList(loc=volumes.loc if isinstance(volumes, PlacedList) else None)
        for i, v in enumerate(volumes):
            if (isinstance(v, Mapping) and v.get("type") == "bind"
                    and isinstance(v.get("source"), str)):
                v = copy_placed(v)
                v["source"] = absolute(v["source"], base, home)
            lst.put(v, where(volumes, i))
        out["volumes"] = lst
    return out


def _paths_in(entries: list[Any], key: str, base: Path, home: str | None) -> PlacedList:
    """A list of mappings with each one's `key` made absolute (env_file, watch rules)."""
    lst = PlacedList(loc=entries.loc if isinstance(entries, PlacedList) else None)
    for i, e in enumerate(entries):
        if isinstance(e, Mapping) and isinstance(e.get(key), str):
            e = copy_placed(e)
            e[key] = absolute(e[key], base, home)
        lst.put(e, where(entries, i))
    return lst


def absolutize(doc: Any, base: Path, home: str | None) -> Any:
    """Every relative path of a whole document made absolute against `base`."""
    if not isinstance(doc, Mapping):
        return doc
    out = copy_placed(doc)
    services = out.get("services")
    if isinstance(services, Mapping):
        s = copy_placed(services)
        for name, svc in services.items():
            s[name] = absolutize_service(svc, base, home)
        out["services"] = s
    for section in ("configs", "secrets"):
        objs = out.get(section)
        if isinstance(objs, Mapping):
            o = copy_placed(objs)
            for name, obj in objs.items():
                if isinstance(obj, Mapping) and isinstance(obj.get("file"), str):
                    obj = copy_placed(obj)
                    obj["file"] = absolute(obj["file"], base, home)
                    o[name] = obj
            out[section] = o
    volumes = out.get("volumes")
    if isinstance(volumes, Mapping):
        v = copy_placed(volumes)
        for name, vol in volumes.items():
            opts = vol.get("driver_opts") if isinstance(vol, Mapping) else None
            # compose-go's rule: a local volume that is a bind (`o: bind`) of `device`.
            if (isinstance(opts, Mapping) and vol.get("driver") == "local"
                    and opts.get("o") == "bind" and isinstance(opts.get("device"), str)):
                opts = copy_placed(opts)
                opts["device"] = absolute(opts["device"], base, home)
                vol = copy_placed(vol)
                vol["driver_opts"] = opts
                v[name] = vol
        out["volumes"] = v
    return out
