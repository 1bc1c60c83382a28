"""The canonical document → `Stack`, with pydantic's complaints turned into SpecErrors.

pydantic names the failing field by path; the loader's place table turns that path
into file:line:col. Keys the compose spec defines but stackd does not run yet are
refused by name ("'devices' is not supported yet"), other unknown keys get a
did-you-mean.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from stackd.errors import Location, SpecError
from stackd.spec.model import Build, ResourceSpec, Service, Stack
from stackd.spec.ratchet import STORED

_IGNORED = "remove it; stackd refuses what it would otherwise ignore"

# Keys of the compose spec that stackd does not implement (yet), per kind of element,
# each with what the user can do instead (the hint of the refusal).
_SERVICE_UNSUPPORTED = dict.fromkeys((
    "cgroup_parent", "cpu_count",
    "cpu_percent", "cpu_rt_period", "cpu_rt_runtime",
    "credential_spec",
    "external_links", "gpus", "isolation",
    "models",
    "provider", "runtime",
    "storage_opt", "use_api_socket",
), _IGNORED)
_BUILD_UNSUPPORTED = dict.fromkeys((
    "entitlements", "isolation", "privileged", "provenance", "sbom",
), _IGNORED) | {
    "ssh": "the builder forwards no SSH agent: fetch private sources before the build",
}
UNSUPPORTED: dict[type[BaseModel], dict[str, str]] = {
    ResourceSpec: {"devices": "device reservations (GPUs…) are not supported yet: give "
                              "the device nodes with the service's devices: instead"},
    Service: _SERVICE_UNSUPPORTED,
    Build: _BUILD_UNSUPPORTED,
    Stack: {"models": _IGNORED},
}

Locate = Callable[[tuple[str | int, ...]], Location | None]


def build_stack(doc: Mapping[str, Any], locate: Locate) -> Stack:
    try:
        return Stack.model_validate(doc)
    except ValidationError as exc:
        raise spec_error(exc, locate) from None


@dataclass(frozen=True)
class Restored:
    """A stack as a revision stored it, and what in it this stackd refuses in new input
    (each as `up` would say it): a rule newer than the revision (spec/ratchet.py)."""

    stack: Stack
    refused: tuple[str, ...] = ()


def restore_stack(doc: Mapping[str, Any]) -> Restored:
    """A stored revision's stack. Raises SpecError if it does not have the model's
    shape at all (nothing of it can be run then)."""
    try:
        return Restored(Stack.model_validate(doc))
    except ValidationError as strict:
        try:
            stack = Stack.model_validate(doc, context=STORED)
        except ValidationError as exc:
            raise spec_error(exc, _nowhere) from None
        return Restored(stack, tuple(str(spec_error(strict, _nowhere, i))
                                     for i in range(strict.error_count())))


def _nowhere(_path: tuple[str | int, ...]) -> Location | None:
    return None


def spec_error(exc: ValidationError, locate: Locate, index: int = 0) -> SpecError:
    """One of pydantic's errors (the first by default) as a readable SpecError."""
    err = exc.errors(include_url=False)[index]
    path = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    owner = _owner(path)
    prefix = _prefix(path)
    loc = locate(path)
    if err["type"] == "extra_forbidden" and path and isinstance(path[-1], str):
        key = path[-1]
        unsupported = UNSUPPORTED.get(owner, {}) if owner is not None else {}
        if key in unsupported:
            return SpecError(f"{prefix}{key!r} is not supported yet", location=loc,
                             hint=unsupported[key])
        known = list(owner.model_fields) if owner is not None else []
        close = difflib.get_close_matches(key, [k for k in known if k != "extensions"], n=1)
        hint = f"did you mean {close[0]!r}?" if close else (
            "extension fields must start with x-")
        return SpecError(f"{prefix}unknown key {key!r}", location=loc, hint=hint)
    message = str(err["msg"])
    for noise in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(noise)
    if err["type"] == "missing":
        message = "is required"
    where = ".".join(str(p) for p in _field_path(path))
    text = f"{prefix}{where}: {message}" if where else f"{prefix}{message}"
    return SpecError(text, location=loc)


def _prefix(path: tuple[Any, ...]) -> str:
    if len(path) >= 2 and path[0] in ("services", "networks", "volumes", "configs", "secrets"):
        kind = {"services": "service", "networks": "network", "volumes": "volume",
                "configs": "config", "secrets": "secret"}[path[0]]
        return f"{kind} {path[1]!r}: "
    return ""


def _field_path(path: tuple[Any, ...]) -> tuple[Any, ...]:
    if len(path) >= 2 and path[0] in ("services", "networks", "volumes", "configs", "secrets"):
        return path[2:]
    return path


def _owner(path: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that holds the last element of `path` (for did-you-mean)."""
    current: Any = Stack
    for part in path[:-1]:
        current = _step(current, part)
        if current is None:
            return None
    return _as_model(current)


def _as_model(tp: Any) -> type[BaseModel] | None:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    for arg in typing.get_args(tp):
        found = _as_model(arg)
        if found is not None:
            return found
    return None


def _step(tp: Any, part: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _step(typing.get_args(tp)[0], part)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if arg is type(None):
                continue
            found = _step(arg, part)
            if found is not None:
                return found
        return None
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        info = tp.model_fields.get(str(part))
        return info.annotation if info is not None else None
    if origin is dict:
        return typing.get_args(tp)[1]
    if origin is tuple:
        return typing.get_args(tp)[0]
    return None
