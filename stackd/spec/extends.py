"""`extends`: a service built on another one, in the same file or another, recursively.

The base is merged under the extending service with the ordinary merge rules. A base
from another file has its relative paths made absolute against that file's directory
first. A chain that comes back to a service already in it is a cycle, reported with
the whole chain in a fixed order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from stackd.errors import SpecError
from stackd.spec.canonical import describe, where
from stackd.spec.merge import merge
from stackd.spec.paths import absolutize_service
from stackd.spec.yaml_positions import PlacedDict

# Chains are a few links long; a thousand is an attack or a generator's mistake, and
# each link is a frame of the resolution (Python's limit is ~1,000).
MAX_CHAIN = 64

ReadDoc = Callable[[str], Any]
"""Reads another file through interpolation and canonical form (cached by the loader)."""
Resolve = Callable[[Path], Path]
"""Where a path leads, symlinks followed (the loader's probes keep the answer)."""


def resolve_extends(doc: Any, file: str, read_doc: ReadDoc, home: str | None,
                    resolve: Resolve = Path.resolve) -> Any:
    """Every service of `doc` (read from `file`) with its `extends` resolved."""
    services = doc.get("services") if isinstance(doc, Mapping) else None
    if not isinstance(services, Mapping) or not any(
        isinstance(s, Mapping) and "extends" in s for s in services.values()
    ):
        return doc
    out = PlacedDict(loc=doc.loc if isinstance(doc, PlacedDict) else None)
    for k, v in doc.items():
        out.put(k, v, where(doc, k))
    resolved = PlacedDict(loc=services.loc if isinstance(services, PlacedDict) else None)
    for name in services:
        resolved.put(name, _resolve(name, doc, file, read_doc, home, (), resolve),
                     where(services, name))
    out["services"] = resolved
    return out


def _resolve(name: str, doc: Any, file: str, read_doc: ReadDoc, home: str | None,
             chain: tuple[tuple[str, str], ...], resolve: Resolve) -> Any:
    services = doc.get("services") if isinstance(doc, Mapping) else None
    if not isinstance(services, Mapping) or name not in services:
        raise SpecError(f"extends: service {name!r} is not defined in {file}")
    service = services[name]
    if not isinstance(service, Mapping) or "extends" not in service:
        return service
    ext = service["extends"]
    loc = where(service, "extends")
    if isinstance(ext, str):
        base_name, base_file = ext, None
    elif isinstance(ext, Mapping) and isinstance(ext.get("service"), str):
        base_name = ext["service"]
        base_file = ext.get("file")
        if base_file is not None and not isinstance(base_file, str):
            raise SpecError(f"service {name!r}: extends.file must be a path, not "
                            f"{describe(base_file)}", location=loc)
        unknown = set(ext) - {"service", "file"}
        if unknown:
            raise SpecError(f"service {name!r}: extends takes only service and file, not "
                            f"{sorted(unknown)[0]!r}", location=loc)
    else:
        raise SpecError(f"service {name!r}: extends must be a service name or a mapping "
                        "with service (and file)", location=loc)
    link = (file, name)
    chain = (*chain, link)
    if len(chain) > MAX_CHAIN:
        raise SpecError(f"service {chain[0][1]!r}: its extends chain is longer than "
                        f"{MAX_CHAIN} services (…, {name!r} extends {base_name!r})",
                        location=loc, hint="extend a service that holds the common part "
                                           "instead of a chain of them")
    target_file = file
    base_doc = doc
    if base_file is not None:
        target_file = str(resolve(Path(file).parent / base_file)) if file != "-" else base_file
        try:
            base_doc = read_doc(target_file)
        except FileNotFoundError:
            raise SpecError(f"service {name!r} extends a service in {base_file!r}, which "
                            "does not exist", location=loc) from None
    if (target_file, base_name) in chain:
        cycle = " → ".join(f"{Path(f).name}:{s}" for f, s in (*chain, (target_file, base_name)))
        raise SpecError(f"extends cycle: {cycle}", location=loc,
                        hint="one of these services must stop extending the others")
    base_services = base_doc.get("services") if isinstance(base_doc, Mapping) else None
    if not isinstance(base_services, Mapping) or base_name not in base_services:
        raise SpecError(f"service {name!r} extends {base_name!r}, which is not defined"
                        + (f" in {base_file}" if base_file else ""), location=loc)
    base = _resolve(base_name, base_doc, target_file, read_doc, home, chain, resolve)
    if base_file is not None:
        base = absolutize_service(base, Path(target_file).parent, home)
    local = PlacedDict(loc=service.loc if isinstance(service, PlacedDict) else None)
    for k, v in service.items():
        if k != "extends":
            local.put(k, v, where(service, k))
    return merge(base, local, ("services", name))
