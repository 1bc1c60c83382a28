"""Seccomp profiles in Docker's JSON format: parsed, checked, and resolved to rules.

Pure: reading the file is the caller's job. `resolve_profile` applies the conditions
Docker's profiles carry (capabilities, architectures, minimum kernel) for one
container, leaving a flat rule list for `libseccomp.compile_bpf`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from stackd.runtime.security.errors import SecurityOptionError
from stackd.runtime.security.libseccomp import (
    ACT_ALLOW,
    ACT_ERRNO,
    ACT_KILL_PROCESS,
    ACT_KILL_THREAD,
    ACT_LOG,
    ACT_TRACE,
    ACT_TRAP,
    CMP_OPS,
    ArgCondition,
    CompiledRule,
)

TYPE_CHECKING = False  # typing's, without importing typing: see specview
if TYPE_CHECKING:
    from typing import Any

EPERM = 1
_ACTIONS = {
    "SCMP_ACT_KILL": ACT_KILL_THREAD, "SCMP_ACT_KILL_THREAD": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": ACT_KILL_PROCESS, "SCMP_ACT_TRAP": ACT_TRAP,
    "SCMP_ACT_ERRNO": ACT_ERRNO, "SCMP_ACT_TRACE": ACT_TRACE, "SCMP_ACT_LOG": ACT_LOG,
    "SCMP_ACT_ALLOW": ACT_ALLOW,
}
_PROFILE_KEYS = {"comment", "defaultAction", "defaultErrnoRet", "architectures", "archMap",
                 "syscalls", "flags", "listenerPath", "listenerMetadata"}
_RULE_KEYS = {"names", "name", "action", "errnoRet", "args", "includes", "excludes", "comment"}
_FILTER_KEYS = {"caps", "arches", "minKernel"}
_ARG_KEYS = {"index", "value", "valueTwo", "op"}


@dataclass(frozen=True, slots=True)
class Condition:
    """includes / excludes of a profile entry."""

    caps: frozenset[str] = frozenset()  # without the CAP_ prefix
    arches: frozenset[str] = frozenset()  # libseccomp names: x86_64, x86, x32…
    min_kernel: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class SyscallEntry:
    names: tuple[str, ...]
    action: str
    errno_ret: int | None
    args: tuple[ArgCondition, ...]
    includes: Condition
    excludes: Condition


@dataclass(frozen=True, slots=True)
class Profile:
    default_action: str
    default_errno: int | None
    # native arch name → arches the filter covers (itself first)
    arch_map: Mapping[str, tuple[str, ...]]
    architectures: tuple[str, ...]  # the legacy flat list, used when arch_map is empty
    syscalls: tuple[SyscallEntry, ...]


@dataclass(frozen=True, slots=True)
class ResolvedFilter:
    default_action: int
    arches: tuple[str, ...]
    rules: tuple[CompiledRule, ...]


def _bad(source: str, what: str) -> SecurityOptionError:
    return SecurityOptionError(
        f"seccomp profile {source}: {what}",
        hint="the file must be a Docker-format seccomp profile (see docs/security.md)")


def arch_name(docker_name: str, source: str) -> str:
    """SCMP_ARCH_X86_64 → x86_64 (libseccomp's name for it)."""
    if not isinstance(docker_name, str) or not docker_name.startswith("SCMP_ARCH_"):
        raise _bad(source, f"unknown architecture {docker_name!r}")
    return docker_name[len("SCMP_ARCH_"):].lower()


def _action(value: Any, source: str, where: str) -> str:
    if value == "SCMP_ACT_NOTIFY":
        raise _bad(source, f"{where}: SCMP_ACT_NOTIFY needs a listener, which stackd "
                           "does not support")
    if value not in _ACTIONS:
        raise _bad(source, f"{where}: unknown action {value!r} (one of "
                           f"{', '.join(sorted(_ACTIONS))})")
    return str(value)


def _condition(raw: Any, source: str, where: str) -> Condition:
    if raw is None:
        return Condition()
    if not isinstance(raw, dict) or set(raw) - _FILTER_KEYS:
        raise _bad(source, f"{where} must be an object with caps, arches or minKernel")
    caps = frozenset(_strip_cap(c) for c in raw.get("caps") or ())
    arches = frozenset(arch_name(a, source) for a in raw.get("arches") or ())
    min_kernel = None
    if raw.get("minKernel"):
        try:
            major, minor = str(raw["minKernel"]).split(".")[:2]
            min_kernel = (int(major), int(minor))
        except ValueError:
            raise _bad(source, f"{where}.minKernel {raw['minKernel']!r} is not "
                               "MAJOR.MINOR") from None
    return Condition(caps=caps, arches=arches, min_kernel=min_kernel)


def _strip_cap(name: Any) -> str:
    text = str(name).upper()
    return text[4:] if text.startswith("CAP_") else text


def _args(raw: Any, source: str, where: str) -> tuple[ArgCondition, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _bad(source, f"{where}.args must be a list")
    out = []
    for i, arg in enumerate(raw):
        w = f"{where}.args[{i}]"
        if not isinstance(arg, dict) or set(arg) - _ARG_KEYS:
            raise _bad(source, f"{w} must have only index, value, valueTwo, op")
        index, op = arg.get("index"), arg.get("op")
        if not isinstance(index, int) or not 0 <= index <= 5:
            raise _bad(source, f"{w}.index must be 0 to 5, got {index!r}")
        if op not in CMP_OPS:
            raise _bad(source, f"{w}.op {op!r} is not one of {', '.join(sorted(CMP_OPS))}")
        value, value_two = arg.get("value", 0), arg.get("valueTwo", 0)
        if not isinstance(value, int) or not isinstance(value_two, int):
            raise _bad(source, f"{w}.value and valueTwo must be integers")
        out.append(ArgCondition(index=index, op=op, value=value, value_two=value_two))
    return tuple(out)


def parse_profile(text: str, source: str) -> Profile:
    """Parse a Docker-format profile; every mistake names the entry and field."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise _bad(source, f"not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise _bad(source, "the top level must be an object")
    unknown = set(data) - _PROFILE_KEYS
    if unknown:
        raise _bad(source, f"unknown field(s) {', '.join(sorted(unknown))}")
    if data.get("listenerPath"):
        raise _bad(source, "listenerPath (seccomp notify) is not supported")
    default_action = _action(data.get("defaultAction"), source, "defaultAction")
    arch_map: dict[str, tuple[str, ...]] = {}
    for i, entry in enumerate(data.get("archMap") or ()):
        if not isinstance(entry, dict) or "architecture" not in entry:
            raise _bad(source, f"archMap[{i}] needs an architecture")
        main = arch_name(entry["architecture"], source)
        subs = tuple(arch_name(a, source) for a in entry.get("subArchitectures") or ())
        arch_map[main] = (main, *subs)
    architectures = tuple(arch_name(a, source) for a in data.get("architectures") or ())
    syscalls = []
    for i, rule in enumerate(data.get("syscalls") or ()):
        where = f"syscalls[{i}]"
        if not isinstance(rule, dict):
            raise _bad(source, f"{where} must be an object")
        extra = set(rule) - _RULE_KEYS
        if extra:
            raise _bad(source, f"{where}: unknown field(s) {', '.join(sorted(extra))}")
        names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
        if not names or not all(isinstance(n, str) and n for n in names):
            raise _bad(source, f"{where} needs names (a list of syscall names)")
        errno_ret = rule.get("errnoRet")
        if errno_ret is not None and not isinstance(errno_ret, int):
            raise _bad(source, f"{where}.errnoRet must be an integer")
        syscalls.append(SyscallEntry(
            names=tuple(names), action=_action(rule.get("action"), source, f"{where}.action"),
            errno_ret=errno_ret, args=_args(rule.get("args"), source, where),
            includes=_condition(rule.get("includes"), source, f"{where}.includes"),
            excludes=_condition(rule.get("excludes"), source, f"{where}.excludes"),
        ))
    default_errno = data.get("defaultErrnoRet")
    if default_errno is not None and not isinstance(default_errno, int):
        raise _bad(source, "defaultErrnoRet must be an integer")
    return Profile(default_action=default_action, default_errno=default_errno,
                   arch_map=arch_map, architectures=architectures, syscalls=tuple(syscalls))


def _action_value(name: str, errno: int | None) -> int:
    base = _ACTIONS[name]
    if name == "SCMP_ACT_ERRNO":
        return base | ((EPERM if errno is None else errno) & 0xFFFF)
    if name == "SCMP_ACT_TRACE":
        return base | ((EPERM if errno is None else errno) & 0xFFFF)
    return base


def filter_arches(profile: Profile, native: str) -> tuple[str, ...]:
    """The arches the filter covers on a `native` host, as Docker chooses them."""
    if profile.arch_map:
        return profile.arch_map.get(native, (native,))
    if profile.architectures:
        return profile.architectures
    return (native,)


def resolve_profile(
    profile: Profile, *, caps: Iterable[str], native: str, kernel: tuple[int, int]
) -> ResolvedFilter:
    """The rules that apply to one container: Docker's includes/excludes semantics.

    includes.caps: all listed caps must be in the container's bounding set;
    excludes.caps: none of them may be. Arches: the native one counts. minKernel:
    the running kernel at least that version.
    """
    held = frozenset(caps)
    rules: list[CompiledRule] = []
    for entry in profile.syscalls:
        inc, exc = entry.includes, entry.excludes
        if inc.caps and not inc.caps <= held:
            continue
        if exc.caps and exc.caps & held:
            continue
        if inc.arches and native not in inc.arches:
            continue
        if exc.arches and native in exc.arches:
            continue
        if inc.min_kernel and kernel < inc.min_kernel:
            continue
        action = _action_value(entry.action, entry.errno_ret)
        indexes = [a.index for a in entry.args]
        if len(set(indexes)) != len(indexes):
            # libseccomp ANDs conditions but cannot hold two on one argument; runc
            # (whose semantics profiles are written for) turns those into one rule each.
            groups: list[tuple[ArgCondition, ...]] = [(a,) for a in entry.args]
        else:
            groups = [entry.args]
        for name in entry.names:
            for conds in groups:
                rules.append(CompiledRule(syscall=name, action=action, conditions=conds))
    return ResolvedFilter(default_action=_action_value(profile.default_action,
                                                       profile.default_errno),
                          arches=filter_arches(profile, native), rules=tuple(rules))
