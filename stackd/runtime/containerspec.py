"""`ContainerSpec`: everything the runtime needs to run one container, and nothing of stacks.

It is our OCI runtime config: the reconciler (or `stackd run`, or an image build's RUN
step) fills one in, the runtime turns it into an isolated process. It knows nothing of
Compose, services or projects; labels are opaque strings the runtime stores and
returns. It is a frozen pydantic model so it can be persisted under the run dir and
handed to the monitor process as JSON.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_jsonable_python

from stackd.runtime.specview import device_rule


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Rlimit(_Frozen):
    type: str  # "nofile", "nproc", "core", … (RLIMIT_ without the prefix, lower case)
    soft: int
    hard: int


class ProcessSpec(_Frozen):
    args: tuple[str, ...]
    env: tuple[str, ...] = ()  # "KEY=value", in order
    cwd: str = "/"
    # "uid", "uid:gid", "name", "name:group" — names resolved from the container's own
    # /etc/passwd and /etc/group; empty means root.
    user: str = ""
    additional_groups: tuple[str, ...] = ()
    terminal: bool = False
    # docker's OpenStdin (`run -i`): stdin is a pipe whose write end, like a terminal's
    # master, goes to the first client that attaches (`attach`); its output meanwhile
    # is kept for that client.
    stdin_open: bool = False
    console_rows: int = Field(default=0, ge=0, le=10000)  # the pty's size at start
    console_cols: int = Field(default=0, ge=0, le=10000)
    rlimits: tuple[Rlimit, ...] = ()
    # A small reaping init runs as PID 1 and the process as its child (`init: true`).
    init: bool = False
    # /proc/PID/oom_score_adj of the process (-1000..1000); None: the monitor's, 0.
    oom_score_adj: int | None = Field(default=None, ge=-1000, le=1000)


# A relative path with no `..` part: components separated by single slashes, each
# `.`, or not starting with `..`, or `..` and more (the schema's regex has no lookahead).
_PART = r"(?:\.|\.?[^/.][^/]*|\.\.[^/]+)"
_RELATIVE_INSIDE = rf"^(?:{_PART}(?:/{_PART})*/?)?$"


class Mount(_Frozen):
    """A mount inside the container.

    bind: `source` is a host path. volume: `source` is a host directory the caller owns
    (a named volume); if it is empty when the container is created, it is seeded from
    the image's content at `target` first, as Docker does; with `subpath`, only that
    path inside it is mounted (resolved inside the volume: a link in it cannot lead out),
    and it must exist. tmpfs: `source` is ignored; `size` (bytes), `mode`, `uid`, `gid`
    and `noexec` apply.
    """

    type: Literal["bind", "volume", "tmpfs"]
    target: str
    source: str = ""
    readonly: bool = False
    size: int | None = None
    mode: int | None = None
    uid: int | None = Field(default=None, ge=0, le=2**32 - 2)
    gid: int | None = Field(default=None, ge=0, le=2**32 - 2)
    noexec: bool = False
    # Seed an empty named volume from the image (Docker's default; `nocopy` turns it off).
    seed: bool = True
    # The volume is a host directory others may reach (it binds one): seeded without
    # set-id bits or device nodes (volume_seed).
    seed_plain: bool = False
    # Relative, no `..` part: the spec's rule (spec.model.VolumeOptions), checked again.
    subpath: str = Field(default="", pattern=_RELATIVE_INSIDE, max_length=4096)


class Namespaces(_Frozen):
    """Which namespaces the container gets.

    Each is "new" (its own), "host" (share the host's), an absolute path of a
    namespace file to join (/proc/<pid>/ns/net, a bind-mounted netns, …), or
    "container:<id>": the namespace of another container of the same runtime, which
    must be running when this one is created (Compose's `pid: service:x`).
    mount and uts (unless "host") namespaces are always new; cgroup is "new" (made
    once the container is in its cgroups) or "host" (Compose's `cgroup: host`).
    """

    pid: str = "new"
    net: str = "new"
    ipc: str = "new"
    uts: str = "new"
    cgroup: Literal["new", "host"] = "new"


class Device(_Frozen):
    """A host device node made in the container's /dev and allowed by its device cgroup.

    The reconciler gives `source`, `target` and `permissions`; the runtime fills in the
    rest from the host node when it creates the container (stackd.runtime.devices), so
    the node and the cgroup rule agree. A directory source stands for every device
    node under it.
    """

    source: str  # host path
    target: str  # in the container, under /dev/
    permissions: str = Field(default="rwm", pattern=r"^[rwm]{1,3}$")
    type: Literal["c", "b"] | None = None
    major: int | None = None
    minor: int | None = None
    mode: int | None = None  # permission bits of the node
    uid: int = 0
    gid: int = 0

    @property
    def cgroup_rule(self) -> str:
        """The devices.allow line: `c 10:229 rwm`."""
        return device_rule(self)


class BlkioLimit(_Frozen):
    """One block device's I/O weight or throttle. The reconciler gives the host path;
    the runtime fills in the numbers from the node when it creates the container."""

    path: str  # host block device
    limit: Literal["weight", "read_bps", "write_bps", "read_iops", "write_iops"]
    value: int = Field(ge=0)
    major: int | None = None
    minor: int | None = None


class Resources(_Frozen):
    memory: int | None = None  # bytes
    memory_swap: int | None = None  # memory + swap, bytes; -1 unlimited
    cpu_quota: int | None = None  # µs per period (cpus × period)
    cpu_period: int = 100_000
    cpu_shares: int | None = None  # v1 shares; mapped to weight on v2
    pids_limit: int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    shm_size: int = 64 * 1024 * 1024
    # cgroup v1's memory controller only (v2 has neither): refused on a v2 host.
    memory_swappiness: int | None = Field(default=None, ge=0, le=100)
    oom_kill_disable: bool = False
    blkio_weight: int | None = Field(default=None, ge=10, le=1000)
    blkio_devices: tuple[BlkioLimit, ...] = ()


class Security(_Frozen):
    privileged: bool = False
    cap_add: tuple[str, ...] = ()  # "NET_ADMIN" or "CAP_NET_ADMIN" or "ALL"
    cap_drop: tuple[str, ...] = ()
    # None: on unless privileged (Docker sets it only on request; we are stricter).
    no_new_privileges: bool | None = None
    # "default" (our Docker-like profile), "unconfined", or a path to a Docker-format JSON profile.
    seccomp: str = "default"
    sysctls: dict[str, str] = Field(default_factory=dict)


class LogConfig(_Frozen):
    max_size: int = 10 * 1024 * 1024  # bytes per file before rotation
    max_files: int = 3


class ContainerSpec(_Frozen):
    id: str  # unique on this host for this state root; [a-z0-9-_.]+
    name: str  # human name; need not be unique to the runtime
    labels: dict[str, str] = Field(default_factory=dict)
    # OCI annotations (Compose's `annotations`): kept with the container for tools that
    # read them (`container inspect`); nothing in stackd acts on them.
    annotations: dict[str, str] = Field(default_factory=dict)
    # Overlay lower dirs, top-most first (the order of overlayfs' lowerdir=).
    layers: tuple[str, ...]
    readonly_rootfs: bool = False
    process: ProcessSpec
    hostname: str = ""
    domainname: str = ""
    mounts: tuple[Mount, ...] = ()
    devices: tuple[Device, ...] = ()
    # More device access than Docker's list and `devices` give (Compose's
    # device_cgroup_rules): devices.allow lines, `c 188:* rwm`.
    device_cgroup_rules: tuple[Annotated[str, Field(
        pattern=r"^[abc] (\*|[0-9]+):(\*|[0-9]+) [rwm]{1,3}$", max_length=64)], ...] = ()
    # Name resolution on stackd's networks: what the network adapter writes into
    # /etc/hosts ("name:ip", ip may be host-gateway) and /etc/resolv.conf beside its
    # own lines. The runtime itself does not read them.
    extra_hosts: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    # Whole-file contents placed in the container, e.g. /etc/hosts, /etc/resolv.conf,
    # /etc/hostname, configs and secrets: path inside → content. Mounted read-only
    # unless the path is one of the three /etc files (which programs may rewrite).
    files: dict[str, str] = Field(default_factory=dict)
    namespaces: Namespaces = Namespaces()
    resources: Resources = Resources()
    security: Security = Security()
    stop_signal: str = "SIGTERM"
    stop_grace: float = 10.0  # seconds
    log: LogConfig = LogConfig()


def plain_schema() -> dict[str, Any]:
    """The model's JSON schema as the monitor reads it (specview): without prose, and
    with every optional field's default, also those a default_factory makes."""
    models = {m.__name__: m for m in (ContainerSpec, ProcessSpec, Rlimit, Mount, Namespaces,
                                       Device, BlkioLimit, Resources, Security, LogConfig)}

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k not in ("title", "description")
                    or (k == "title" and node.get("type") == "object" and "properties" in node)}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    full = ContainerSpec.model_json_schema()
    for name, node in [("ContainerSpec", full), *full["$defs"].items()]:
        for field, prop in node["properties"].items():
            info = models[name].model_fields[field]
            if not info.is_required() and "default" not in prop:
                prop["default"] = to_jsonable_python(info.get_default(call_default_factory=True))
    return dict(strip(full))


if __name__ == "__main__":
    import json
    import sys
    from pathlib import Path

    from stackd.runtime.specview import SCHEMA_FILE

    text = json.dumps(plain_schema(), indent=1, sort_keys=True) + "\n"
    if sys.argv[1:] == ["--check"]:
        sys.exit(0 if Path(SCHEMA_FILE).read_text() == text else 1)
    Path(SCHEMA_FILE).write_text(text)
