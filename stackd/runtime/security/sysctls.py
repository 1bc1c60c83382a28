"""Which sysctls a container may set, decided as runc and Docker decide it.

Only sysctls that live in a namespace the container owns can be set: writing any other
would change the host for everyone. Pure: the caller says which namespaces are shared
with the host.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from stackd.runtime.security.errors import SecurityOptionError

# kernel.* sysctls that belong to the IPC namespace (ipc_namespace.c and mqueue).
IPC_SYSCTLS = frozenset({
    "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
    "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
})


@dataclass(frozen=True, slots=True)
class Sysctl:
    name: str
    value: str

    @property
    def proc_path(self) -> str:
        """The file under /proc/sys; a name with '/' already uses slashes as separators
        (so interface names with dots, e.g. net/ipv4/conf/eth0.100/forwarding, work)."""
        sep = "/" if "/" in self.name else "."
        return "/proc/sys/" + "/".join(self.name.split(sep))


def _canonical(name: str) -> str:
    return name.replace("/", ".") if "/" in name else name


def validate_sysctls(
    sysctls: Mapping[str, str], *, net_is_host: bool, ipc_is_host: bool, uts_is_host: bool
) -> tuple[Sysctl, ...]:
    """Check every sysctl against the container's namespaces; sorted by name."""
    accepted: list[Sysctl] = []
    for name in sorted(sysctls):
        value = sysctls[name]
        key = _canonical(name.strip())
        if not key or any(not part for part in key.split(".")):
            raise SecurityOptionError(f"sysctl {name!r} is not a valid sysctl name",
                                      hint="write it dotted, e.g. net.ipv4.ip_forward")
        if key in IPC_SYSCTLS or key.startswith("fs.mqueue."):
            if ipc_is_host:
                raise SecurityOptionError(
                    f"sysctl {name} cannot be set: the container shares the host's IPC "
                    "namespace, so it would change the host",
                    hint="drop ipc: host, or drop the sysctl")
        elif key.startswith("net."):
            if net_is_host:
                raise SecurityOptionError(
                    f"sysctl {name} cannot be set: the container shares the host's network "
                    "namespace, so it would change the host",
                    hint="give the container its own network, or drop the sysctl")
        elif key == "kernel.domainname":
            if uts_is_host:
                raise SecurityOptionError(
                    f"sysctl {name} cannot be set: the container shares the host's UTS "
                    "namespace", hint="drop uts: host, or drop the sysctl")
        elif key == "kernel.hostname":
            raise SecurityOptionError(
                "sysctl kernel.hostname is not allowed: it conflicts with the container's "
                "hostname", hint="set hostname: on the service instead")
        else:
            raise SecurityOptionError(
                f"sysctl {name} is not namespaced: setting it in a container would change "
                "the whole host",
                hint="only net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.* and "
                "kernel.domainname can be set per container")
        accepted.append(Sysctl(name=name.strip(), value=str(value)))
    return tuple(accepted)
