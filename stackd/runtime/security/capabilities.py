"""Linux capabilities: names, Docker's default set, and the sets a container gets.

Pure: nothing here touches the kernel. `finalize_process` applies the result.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from stackd.runtime.security.errors import SecurityOptionError

# Numbers from <linux/capability.h>; the index is the capability number.
CAPABILITY_NAMES: tuple[str, ...] = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
    "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
    "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO",
    "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
    "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
    "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)
CAPABILITY_NUMBERS: dict[str, int] = {name: n for n, name in enumerate(CAPABILITY_NAMES)}
ALL_CAPABILITIES: frozenset[str] = frozenset(CAPABILITY_NAMES)

# What `docker run` gives a container that asks for nothing (moby's oci/caps defaults).
DOCKER_DEFAULT_CAPABILITIES: frozenset[str] = frozenset({
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
    "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
})


@dataclass(frozen=True, slots=True)
class ProcessCapabilities:
    """The five capability sets of one process, by name."""

    bounding: frozenset[str]
    effective: frozenset[str]
    permitted: frozenset[str]
    inheritable: frozenset[str]
    ambient: frozenset[str]


@dataclass(frozen=True, slots=True)
class CapabilitySets:
    """The five sets of the container's process, as capability names.

    `bounding` is the ceiling for the process and everything it execs. Which of it is
    effective/permitted depends on the user, known only in the child: see `for_user`.
    """

    bounding: frozenset[str]

    def for_user(self, uid: int) -> ProcessCapabilities:
        # Docker (and runc under it) give uid 0 the whole set as effective and permitted,
        # and leave inheritable and ambient empty (moby dropped inheritable after
        # CVE-2022-24769). A non-root user gets empty effective/permitted: capabilities
        # reach it only through file capabilities on the binaries it runs, bounded by
        # `bounding` — and with no_new_privs on (our default) not even those.
        held = self.bounding if uid == 0 else frozenset()
        return ProcessCapabilities(
            bounding=self.bounding, effective=held, permitted=held,
            inheritable=frozenset(), ambient=frozenset(),
        )


def normalise_capability(raw: str, *, field: str) -> str:
    """`cap_net_admin`, `CAP_NET_ADMIN`, `NET_ADMIN` → `NET_ADMIN`; `all` → `ALL`."""
    name = raw.strip().upper()
    if name.startswith("CAP_"):
        name = name[4:]
    if name == "ALL" or name in ALL_CAPABILITIES:
        return name
    raise SecurityOptionError(
        f"unknown capability {raw!r} in {field}",
        hint="use a name from capabilities(7) such as NET_ADMIN or SYS_PTRACE, or ALL",
    )


def compute_capabilities(
    *, privileged: bool, cap_add: Iterable[str], cap_drop: Iterable[str]
) -> CapabilitySets:
    """The bounding set Docker would give: defaults, minus drops, plus adds.

    As moby's TweakCapabilities: drops apply to the defaults first and adds are put
    back after, so `cap_drop: [ALL], cap_add: [NET_BIND_SERVICE]` leaves exactly
    NET_BIND_SERVICE, and an add wins over a drop of the same name. `cap_add: [ALL]`
    means every capability except those dropped by name.
    """
    adds = {normalise_capability(c, field="cap_add") for c in cap_add}
    drops = {normalise_capability(c, field="cap_drop") for c in cap_drop}
    if privileged:
        return CapabilitySets(bounding=ALL_CAPABILITIES)
    if "ALL" in adds:
        return CapabilitySets(bounding=ALL_CAPABILITIES - drops)
    caps = set() if "ALL" in drops else set(DOCKER_DEFAULT_CAPABILITIES) - drops
    return CapabilitySets(bounding=frozenset(caps | adds))


def capability_mask(names: Iterable[str]) -> int:
    mask = 0
    for name in names:
        mask |= 1 << CAPABILITY_NUMBERS[name]
    return mask
