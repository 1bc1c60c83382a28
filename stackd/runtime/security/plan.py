"""`prepare`: everything about a container's confinement, decided in the parent.

The parent does the thinking (capability arithmetic, sysctl rules, compiling the
seccomp profile with libseccomp); the forked child only applies the finished
`SecurityPlan` with a handful of syscalls (see `process.py`).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from stackd.runtime.security import libseccomp
from stackd.runtime.security.capabilities import (
    CAPABILITY_NAMES,
    CapabilitySets,
    compute_capabilities,
)
from stackd.runtime.security.errors import SecurityOptionError
from stackd.runtime.security.seccomp_profile import parse_profile, resolve_profile
from stackd.runtime.security.sysctls import Sysctl, validate_sysctls

TYPE_CHECKING = False  # typing's, without importing typing: see specview
if TYPE_CHECKING:
    from stackd.runtime.containerspec import ContainerSpec

DEFAULT_PROFILE = "default"
UNCONFINED = "unconfined"
_MACHINE_TO_SECCOMP_ARCH = {"x86_64": "x86_64", "aarch64": "aarch64", "i686": "x86",
                            "i386": "x86", "armv7l": "arm"}


@dataclass(frozen=True, slots=True)
class SecurityPlan:
    """What the child applies. Picklable, so a monitor process can receive one."""

    capabilities: CapabilitySets
    sysctls: tuple[Sysctl, ...]
    # Classic BPF (struct sock_filter[]), or None for no filter (unconfined/privileged).
    seccomp_bpf: bytes | None
    seccomp_source: str  # "default", "unconfined", or the profile's path — for errors
    no_new_privs: bool
    privileged: bool
    last_cap: int  # the kernel's highest capability number (cap_last_cap)


def host_last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(CAPABILITY_NAMES) - 1


def kernel_version() -> tuple[int, int]:
    parts = os.uname().release.split(".")
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


def _same_namespace(path: str, kind: str) -> bool:
    """Is the namespace file `path` the host's namespace of this kind?

    "The host's" is the one stackd itself runs in (PID 1's may be unreadable to us).
    """
    try:
        target = os.stat(path)
    except OSError:
        return False
    for host in (f"/proc/self/ns/{kind}", f"/proc/1/ns/{kind}"):
        try:
            st = os.stat(host)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
            return True
    return False


def _is_host(value: str, kind: str) -> bool:
    return value == "host" or (value.startswith("/") and _same_namespace(value, kind))


@functools.lru_cache(maxsize=1)
def _default_profile_text() -> str:
    # A plain open beside this file: importlib.resources would import zipfile and
    # threading (~0.6 MiB of the monitor's memory, issue #20) for a file that is ours.
    with open(os.path.join(os.path.dirname(__file__), "default_seccomp.json")) as f:
        return f.read()


def _profile_text(source: str) -> str:
    if source == DEFAULT_PROFILE:
        return _default_profile_text()
    if not os.path.isabs(source):
        raise SecurityOptionError(
            f"seccomp profile {source!r} must be an absolute path, 'default' or 'unconfined'",
            hint="give the full path of a Docker-format JSON profile")
    try:
        with open(source) as f:
            return f.read()
    except OSError as err:
        raise SecurityOptionError(f"cannot read seccomp profile {source}: {err.strerror}",
                                  hint="check the path in security_opt seccomp=…") from None


@functools.lru_cache(maxsize=64)
def compile_profile(text: str, source: str, caps: frozenset[str],
                    kernel: tuple[int, int]) -> bytes:
    """Compile a profile for one capability set to BPF; cached, since every container
    of a service (and every exec into one) compiles the same thing."""
    bpf = _compile(text, source, caps, kernel)
    # The parse and libseccomp's work leave ~1 MiB of freed heap, which the monitor
    # would otherwise keep resident for as long as it runs (issue #20).
    libseccomp.trim_heap()
    return bpf


def _compile(text: str, source: str, caps: frozenset[str], kernel: tuple[int, int]) -> bytes:
    profile = parse_profile(text, source)
    native = _MACHINE_TO_SECCOMP_ARCH.get(os.uname().machine, os.uname().machine)
    resolved = resolve_profile(profile, caps=caps, native=native, kernel=kernel)
    tokens = []
    for arch in resolved.arches:
        token = libseccomp.arch_token(arch)
        if token == 0:
            raise SecurityOptionError(f"seccomp profile {source}: libseccomp does not know "
                                      f"architecture {arch!r}")
        tokens.append(token)
    try:
        return libseccomp.compile_bpf(resolved.default_action, tokens, resolved.rules)
    except libseccomp.SeccompCompileError as err:
        raise SecurityOptionError(f"seccomp profile {source}: {err}",
                                  hint="fix or remove that rule") from None


def prepare(spec: ContainerSpec) -> SecurityPlan:
    """Decide the container's capabilities, sysctls, seccomp filter and no_new_privs.

    Raises SecurityOptionError for anything the user wrote wrong; runs in the parent.
    """
    sec = spec.security
    caps = compute_capabilities(privileged=sec.privileged, cap_add=sec.cap_add,
                                cap_drop=sec.cap_drop)
    sysctls = validate_sysctls(
        sec.sysctls,
        net_is_host=_is_host(spec.namespaces.net, "net"),
        ipc_is_host=_is_host(spec.namespaces.ipc, "ipc"),
        uts_is_host=_is_host(spec.namespaces.uts, "uts"),
    )
    source = sec.seccomp.strip() or DEFAULT_PROFILE
    if source.lower() == UNCONFINED:
        source = UNCONFINED
    # As Docker: privileged turns the default filter off; an explicitly named profile
    # file still applies, since the user asked for it by name.
    if source == UNCONFINED or (sec.privileged and source == DEFAULT_PROFILE):
        bpf = None
    else:
        bpf = compile_profile(_profile_text(source), source, caps.bounding, kernel_version())
    no_new_privs = (not sec.privileged) if sec.no_new_privileges is None \
        else sec.no_new_privileges
    return SecurityPlan(capabilities=caps, sysctls=sysctls, seccomp_bpf=bpf,
                        seccomp_source=source if bpf is not None else UNCONFINED,
                        no_new_privs=no_new_privs, privileged=sec.privileged,
                        last_cap=host_last_cap())
