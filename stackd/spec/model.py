"""The resolved stack: frozen pydantic models, long syntax everywhere.

A `Stack` is what every later stage (scheduler, reconciler) reads. It holds no short
syntax and no unresolved variables: ports, volumes, depends_on, healthcheck.test,
command and environment are always in their long form, durations are `timedelta`,
byte sizes are `int` bytes. Compose `x-*` extension fields are kept in `extensions`
and written back under their own names.

`Stack.model_validate(raw)` accepts short syntax too (it runs the same canonical-form
stage as the loader), so tests can build stacks from small dicts; `spec.load()` is the
way to read files and is the only way to get file locations (`Stack.location_of`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    model_serializer,
)

from stackd import hostnames
from stackd.errors import Location
from stackd.spec.ratchet import field_validator, model_validator
from stackd.spec.tmpfs import parse_tmpfs
from stackd.spec.units import format_duration, parse_bytes, parse_duration

Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]
"""A compose duration (`1m30s`, `500ms`); a `timedelta` in Python, the compose spelling out."""

ByteSize = Annotated[int, BeforeValidator(parse_bytes)]
"""A compose byte size (`512m`, `1g`) as int bytes."""

MIN_MEMORY_LIMIT = 6 * 1024 * 1024  # Docker's: below it a container cannot even start


def _memory_limit(v: int) -> int:
    if 0 < v < MIN_MEMORY_LIMIT:
        raise ValueError(f"{v} bytes is below the smallest memory limit, 6 MiB "
                         "(as Docker's); give at least 6m")
    return v


MemoryLimit = Annotated[int, BeforeValidator(parse_bytes), AfterValidator(_memory_limit)]
"""A memory limit: a `ByteSize` of at least 6 MiB (0: none)."""


def _absolute(v: str) -> str:
    if not v.startswith("/"):
        raise ValueError(f"{v!r} is not an absolute path: a working directory is a path "
                         "in the container, written like /app (Docker refuses others)")
    return v


WorkingDir = Annotated[str, AfterValidator(_absolute)]
"""A process's working directory in the container: an absolute path."""

Path = tuple[str | int, ...]
"""Where an element sits in the stack, e.g. ("services", "web", "depends_on", "db")."""


class Node(BaseModel):
    """Base of every stack element: frozen, unknown keys refused, `x-*` kept aside."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True,
                              allow_inf_nan=False)

    extensions: dict[str, Any] = Field(default_factory=dict, exclude=False)

    # Fields written out even when they hold their default, because a reader of
    # `stackd config` should not have to know the default (depends_on's condition).
    _always_written: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _collect_extensions(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and any(_is_extension(k) for k in data):
            plain = {k: v for k, v in data.items() if not _is_extension(k)}
            ext = dict(plain.pop("extensions", None) or {})
            ext.update({k: v for k, v in data.items() if _is_extension(k)})
            plain["extensions"] = ext
            return plain
        return data

    def __hash__(self) -> int:
        # pydantic's frozen hash fails on dict fields; every node has one (extensions).
        return hash((type(self), _freeze(self.__dict__)))

    @model_serializer(mode="wrap")
    def _spread_extensions(self, handler: SerializerFunctionWrapHandler) -> Any:
        out = handler(self)
        if isinstance(out, dict):
            ext = out.pop("extensions", None) or {}
            out.update(ext)
            for name in self._always_written:
                out.setdefault(name, getattr(self, name))
        return out


# ---------------------------------------------------------------------------- build


class Build(Node):
    context: str = "."
    # Named contexts (`COPY --from=NAME`, `FROM NAME`, `RUN --mount=from=NAME`): a
    # directory (made absolute against the project, as context), or
    # docker-image://REF standing in for an image of that name.
    additional_contexts: dict[str, str] = Field(default_factory=dict)
    dockerfile: str | None = None
    # The Dockerfile's text itself (compose's dockerfile_inline), instead of a file.
    dockerfile_inline: str | None = None
    args: dict[str, str | None] = Field(default_factory=dict)
    target: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    tags: tuple[str, ...] = ()
    no_cache: bool = False
    pull: bool = False
    # The builder always uses (and fills) the store's own layer cache; other caches
    # named here are accepted and not consulted, as buildx does for an absent cache.
    cache_from: tuple[str, ...] = ()
    cache_to: tuple[str, ...] = ()
    # Accepted when every entry is a platform this host runs (checked with the service's
    # `platform:` before images are built; see stackd/images/platform.py).
    platforms: tuple[str, ...] = ()
    # Top-level secrets a RUN --mount=type=secret may read (id: target, else source);
    # only `file:` ones (spec/buildsecrets.py).
    secrets: tuple[FileReference, ...] = ()
    # What RUN steps are on (a RUN's own --network wins): the root's default network, as
    # Docker's default bridge, or none (loopback only).
    network: Literal["default", "none"] | None = None
    # Of every RUN step's container, as the service's own keys are of its containers.
    extra_hosts: tuple[str, ...] = ()  # "host=ip"
    shm_size: ByteSize | None = None
    ulimits: dict[str, Ulimit] = Field(default_factory=dict)

    @field_validator("additional_contexts")
    @classmethod
    def _named_contexts(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not name or any(c.isspace() for c in name):
                raise ValueError(f"{name!r} is not a name a Dockerfile "
                                 "can use")
            if value.startswith("service:"):
                raise ValueError(
                    f"{name}: another service's image ({value}) is not "
                    "supported yet: build that service first and name its image, "
                    "docker-image://IMAGE")
            if not (value.startswith("docker-image://") or value.startswith("/")):
                scheme = value.split("://")[0] + "://" if "://" in value else value
                raise ValueError(
                    f"{name}: {scheme} is not supported yet: give a "
                    "directory, or docker-image://IMAGE")
        return v

    @field_validator("network", mode="before")
    @classmethod
    def _network_mode(cls, v: object) -> object:
        if v == "host":
            raise ValueError("host is not supported: a build step would share the "
                             "host's network; RUN steps reach the host at their network's "
                             "gateway (use default, or none)")
        if isinstance(v, str) and v not in ("default", "none"):
            raise ValueError(f"{v!r}: build steps are on the root's default network or on "
                             "none; use default or none")
        return v

    @field_validator("platforms")
    @classmethod
    def _platforms_form(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for text in v:
            _check_platform(text)
        return v

    @model_validator(mode="after")
    def _one_dockerfile(self) -> Build:
        if self.dockerfile is not None and self.dockerfile_inline is not None:
            raise ValueError("dockerfile and dockerfile_inline are both set: keep one")
        return self


# ---------------------------------------------------------------------------- ports


class Port(Node):
    """One published or exposed container port (long syntax).

    `published` is a string as in compose: a port ("8080"), a range ("8080-8090") or
    None (an ephemeral host port).
    """

    target: int = Field(ge=0, le=65535)
    published: str | None = None
    host_ip: str | None = None
    protocol: Literal["tcp", "udp", "sctp"] = "tcp"
    mode: Literal["ingress", "host"] = "ingress"
    name: str | None = None
    app_protocol: str | None = None

    @field_validator("published", mode="before")
    @classmethod
    def _published_as_text(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            return str(v)
        return v

    @field_validator("published")
    @classmethod
    def _published_syntax(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"\d{1,5}(-\d{1,5})?", v):
            raise ValueError(f"published port {v!r} must be a port or a range like 8000-8010")
        return v


# -------------------------------------------------------------------------- volumes


class BindOptions(Node):
    propagation: str | None = None
    create_host_path: bool = True
    selinux: Literal["z", "Z"] | None = None


class VolumeOptions(Node):
    nocopy: bool = False
    subpath: str | None = None  # mount only this path of the volume (Docker's rule below)

    @field_validator("subpath")
    @classmethod
    def _inside(cls, v: str | None) -> str | None:
        if v is not None and (not v or v.startswith("/") or ".." in v.split("/")):
            raise ValueError(f"subpath {v!r} must be a relative path within the volume")
        return v


class TmpfsOptions(Node):
    size: ByteSize | None = None
    mode: int | None = None


class ServiceVolume(Node):
    """A mount in a service (long syntax). `source` is an absolute host path for a bind,
    a top-level volume's key for a volume (None: anonymous), unused for tmpfs."""

    type: Literal["bind", "volume", "tmpfs"]
    source: str | None = None
    target: str
    read_only: bool = False
    consistency: str | None = None
    bind: BindOptions | None = None
    volume: VolumeOptions | None = None
    tmpfs: TmpfsOptions | None = None

    @model_validator(mode="after")
    def _subpath_of_a_named_volume(self) -> ServiceVolume:
        if self.volume is not None and self.volume.subpath is not None and (
                self.type != "volume" or self.source is None):
            raise ValueError(f"volume.subpath needs a named volume as the source (mount at "
                             f"{self.target}): an anonymous one is new and empty")
        return self


# ----------------------------------------------------------------------- depends_on


class Dependency(Node):
    _always_written = ("condition",)

    condition: Literal[
        "service_started", "service_healthy", "service_completed_successfully"
    ] = "service_started"
    restart: bool = False
    required: bool = True


# ---------------------------------------------------------------------- healthcheck


class Hook(Node):
    """A `post_start`/`pre_stop` lifecycle hook: a command run in the container as an
    exec, with the container's user, working directory and environment unless set."""

    command: tuple[str, ...] = Field(min_length=1)
    user: str | None = None
    working_dir: WorkingDir | None = None
    environment: dict[str, str | None] = Field(default_factory=dict)
    # An exec runs with the container's own privileges; more is refused (validator).
    privileged: bool = False

    @field_validator("privileged")
    @classmethod
    def _not_privileged(cls, v: bool) -> bool:
        if v:
            raise ValueError("a privileged hook is not supported: a hook runs with the "
                             "container's own privileges (set privileged: on the service)")
        return v


class WatchRule(Node):
    """One `develop.watch` rule (`stackd watch`): what a change under `path` (absolute
    once loaded) does to the service's running containers."""

    action: Literal["sync", "rebuild", "restart", "sync+restart", "sync+exec"]
    path: str
    target: str | None = None  # where `path` lands in the container (the sync actions)
    ignore: tuple[str, ...] = ()  # .dockerignore patterns, relative to `path`
    include: tuple[str, ...] = ()  # only these, if given (same patterns)
    initial_sync: bool = False  # sync everything once as the watch starts
    exec: Hook | None = None  # sync+exec: run in each container after a sync

    @model_validator(mode="after")
    def _complete(self) -> WatchRule:
        if self.action.startswith("sync"):
            if not self.target or not self.target.startswith("/"):
                raise ValueError(f"action {self.action} needs target: an absolute path in "
                                 "the container")
        elif self.target is not None:
            raise ValueError(f"action {self.action} takes no target")
        if (self.action == "sync+exec") != (self.exec is not None):
            raise ValueError("exec: goes with action sync+exec, and it needs one")
        return self


class Develop(Node):
    watch: tuple[WatchRule, ...] = ()


class Healthcheck(Node):
    """`test` is the long form: ("CMD", arg…), ("CMD-SHELL", line) or ("NONE",).

    A timing or `retries` left unset (or 0, as Docker reads it) is the image's
    HEALTHCHECK's, else Docker's default (reconciler.translate.healthcheck_of).
    """

    test: tuple[str, ...] | None = None
    interval: Duration | None = None
    timeout: Duration | None = None
    retries: int | None = Field(default=None, ge=0)
    start_period: Duration | None = None
    start_interval: Duration | None = None
    disable: bool = False

    @field_validator("test")
    @classmethod
    def _test_form(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if v is None:
            return v
        if not v or v[0] not in ("CMD", "CMD-SHELL", "NONE"):
            raise ValueError("healthcheck test must start with CMD, CMD-SHELL or NONE")
        if v[0] == "CMD-SHELL" and len(v) != 2:
            raise ValueError("healthcheck CMD-SHELL takes exactly one command line")
        if v[0] == "CMD" and len(v) < 2:
            raise ValueError("healthcheck CMD needs a command")
        return v

    @field_validator("interval", "timeout", "start_period", "start_interval")
    @classmethod
    def _zero_or_a_millisecond(cls, v: timedelta | None, info: ValidationInfo
                               ) -> timedelta | None:
        # Docker's rule: 0 (unset) or at least 1ms; a probe every microsecond is a
        # process started without pause.
        if v is not None and timedelta(0) < v < timedelta(milliseconds=1):
            raise ValueError(f"healthcheck {info.field_name} {format_duration(v)} is less "
                             "than 1ms (give 0 for the default, or at least 1ms)")
        return v

    @property
    def disabled(self) -> bool:
        return self.disable or self.test == ("NONE",)


# --------------------------------------------------------------------------- deploy


class ResourceSpec(Node):
    cpus: float | None = Field(default=None, ge=0)
    memory: ByteSize | None = None
    pids: int | None = None

    @field_validator("cpus", mode="before")
    @classmethod
    def _cpus_text(cls, v: Any) -> Any:
        return float(v) if isinstance(v, str) and _is_number(v) else v


class Resources(Node):
    limits: ResourceSpec | None = None
    reservations: ResourceSpec | None = None

    @field_validator("limits")
    @classmethod
    def _memory_limit(cls, v: ResourceSpec | None) -> ResourceSpec | None:
        if v is not None and v.memory is not None:
            _memory_limit(v.memory)
        return v


class DeployRestartPolicy(Node):
    condition: Literal["none", "on-failure", "any"] = "any"
    delay: Duration = timedelta(0)
    max_attempts: int | None = None
    window: Duration = timedelta(0)


class UpdateConfig(Node):
    parallelism: int = Field(default=1, ge=0)
    delay: Duration = timedelta(0)
    failure_action: Literal["continue", "rollback", "pause"] = "pause"
    monitor: Duration = timedelta(seconds=5)
    max_failure_ratio: float = 0.0
    order: Literal["stop-first", "start-first"] = "stop-first"


class Placement(Node):
    constraints: tuple[str, ...] = ()
    preferences: tuple[dict[str, str], ...] = ()
    max_replicas_per_node: int | None = None


class Deploy(Node):
    mode: Literal["replicated", "global"] = "replicated"
    replicas: int | None = Field(default=None, ge=0)
    resources: Resources | None = None
    restart_policy: DeployRestartPolicy | None = None
    update_config: UpdateConfig | None = None
    rollback_config: UpdateConfig | None = None
    placement: Placement | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    endpoint_mode: Literal["vip", "dnsrr"] | None = None

    @model_validator(mode="after")
    def _replicas_are_replicated(self) -> Deploy:
        if self.mode == "global" and self.replicas is not None:
            raise ValueError(only_replicated("replicas"))
        return self


def only_replicated(key: str) -> str:
    """Swarm's refusal of a count given to a global service (`key`: what gave it)."""
    return (f"{key} can only be used with replicated mode: a global service runs one "
            f"container on each node (remove {key}, or mode: global)")


# ------------------------------------------------------------------- small service parts


def _no_reserved_labels(labels: dict[str, str]) -> dict[str, str]:
    if reserved := hostnames.reserved_labels(labels):
        raise ValueError(f"label {reserved[0]!r}: the {hostnames.LABEL_PREFIX} prefix is "
                         "stackd's own (it finds and keeps what it made by it); name the "
                         "label otherwise")
    return labels


# Docker's bridge driver options that stackd follows; any other is refused by name.
MTU_OPTION = "com.docker.network.driver.mtu"
ICC_OPTION = "com.docker.network.bridge.enable_icc"
HOST_BINDING_OPTION = "com.docker.network.bridge.host_binding_ipv4"
NETWORK_OPTIONS = (MTU_OPTION, ICC_OPTION, HOST_BINDING_OPTION)
# Go's strconv.ParseBool, which Docker reads these with.
_GO_FALSE = frozenset({"0", "f", "false"})
_GO_BOOLS = _GO_FALSE | {"1", "t", "true"}


def _is_ipv4(text: str) -> bool:
    from ipaddress import IPv4Address

    try:
        IPv4Address(text)
    except ValueError:
        return False
    return True


class ServiceNetwork(Node):
    aliases: tuple[str, ...] = ()
    ipv4_address: str | None = None
    ipv6_address: str | None = None
    priority: int | None = None
    mac_address: str | None = None
    interface_name: str | None = None

    @field_validator("ipv6_address")
    @classmethod
    def _no_ipv6(cls, v: str | None) -> str | None:
        if v:
            raise ValueError(f"{v!r}: IPv6 is not supported yet (stackd's networks are "
                             "IPv4 only); give ipv4_address, or leave it out")
        return v

    @field_validator("interface_name")
    @classmethod
    def _interface_name_form(cls, v: str | None) -> str | None:
        # The kernel's rule (IFNAMSIZ 16 with the NUL, no '/', ':' or spaces); `lo`
        # exists already in every network namespace.
        if v is not None and (not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", v)
                              or v in ("lo", ".", "..")):
            raise ValueError(f"interface_name {v!r} must be 1-15 letters, digits, '_', "
                             "'.' or '-', and not lo")
        return v


class DeviceMapping(Node):
    """A host device given to the container: `source` on the host, `target` under /dev."""

    source: str
    target: str
    permissions: str = "rwm"

    @model_validator(mode="after")
    def _paths(self) -> DeviceMapping:
        if not self.source.startswith("/"):
            raise ValueError(f"device {self.source!r}: the host path must be absolute "
                             "(CDI device names are not supported yet)")
        if not re.fullmatch(r"/dev/[A-Za-z0-9_.+@:-]+(/[A-Za-z0-9_.+@:-]+)*", self.target) or \
                any(p in (".", "..") for p in self.target.split("/")):
            raise ValueError(f"device target {self.target!r} must be a path under /dev/")
        if not re.fullmatch(r"[rwm]{1,3}", self.permissions):
            raise ValueError(f"device permissions {self.permissions!r} must be made of "
                             "r, w and m")
        return self


def _absolute_device(path: str) -> str:
    if not path.startswith("/"):
        raise ValueError(f"block device {path!r}: the host path must be absolute (/dev/sda)")
    return path


BlockDevicePath = Annotated[str, AfterValidator(_absolute_device)]


class BlkioWeightDevice(Node):
    path: BlockDevicePath
    weight: int = Field(ge=10, le=1000)


class BlkioRate(Node):
    """One device's read or write limit; bytes per second for the bps lists (`12mb`),
    operations per second for the iops lists."""

    path: BlockDevicePath
    rate: ByteSize = Field(ge=0)


class BlkioConfig(Node):
    """Block I/O limits of the container's cgroup, per host block device (Docker's
    --blkio-weight, --device-read-bps…)."""

    weight: int | None = Field(default=None, ge=10, le=1000)
    weight_device: tuple[BlkioWeightDevice, ...] = ()
    device_read_bps: tuple[BlkioRate, ...] = ()
    device_write_bps: tuple[BlkioRate, ...] = ()
    device_read_iops: tuple[BlkioRate, ...] = ()
    device_write_iops: tuple[BlkioRate, ...] = ()


class Ulimit(Node):
    soft: int
    hard: int


# json-file options that only shape what Docker writes around each line (or compress
# rotated files): stackd's own log files have no use for them, and ignoring them
# changes nothing a user reads back.
_LOG_OPTIONS_WITHOUT_EFFECT = frozenset({"compress", "labels", "labels-regex", "env",
                                         "env-regex", "tag", "mode", "max-buffer-size"})


class Logging(Node):
    """`logging:`. stackd keeps each container's output in its own rotated files, as
    Docker's json-file (and local) driver does: their max-size and max-file apply;
    another driver is refused by name, not ignored."""

    driver: str | None = None
    options: dict[str, str] = Field(default_factory=dict)

    @field_validator("options", mode="before")
    @classmethod
    def _options_as_text(cls, v: Any) -> Any:
        if isinstance(v, Mapping):  # max-file: 3 is as good as "3"
            return {k: str(x) if isinstance(x, int | float) and not isinstance(x, bool)
                    else x for k, x in v.items()}
        return v

    @model_validator(mode="after")
    def _kept_by_stackd(self) -> Logging:
        if self.driver not in (None, "json-file", "local"):
            raise ValueError(
                f"driver {self.driver!r} is not supported yet: stackd keeps each "
                "container's output in its own rotated files (`stackd logs`); json-file's "
                "max-size and max-file options apply")
        for key in self.options:
            if key not in ("max-size", "max-file") and key not in _LOG_OPTIONS_WITHOUT_EFFECT:
                raise ValueError(f"option {key!r} is not supported yet: "
                                 "max-size and max-file apply")
        if self.max_size is not None and self.max_size <= 0:
            raise ValueError("max-size must be more than 0 bytes")
        if self.max_files is not None and self.max_files < 1:
            raise ValueError("max-file must be at least 1")
        return self

    @property
    def max_size(self) -> int | None:
        text = self.options.get("max-size")
        return parse_bytes(text) if text is not None else None

    @property
    def max_files(self) -> int | None:
        text = self.options.get("max-file")
        if text is None:
            return None
        if not text.isdigit():
            raise ValueError(f"max-file {text!r} is not a number of files")
        return int(text)


class EnvFile(Node):
    path: str
    required: bool = True
    format: str | None = None


class FileReference(Node):
    """A service's use of a top-level config or secret (long syntax)."""

    source: str
    target: str | None = None
    uid: str | None = None
    gid: str | None = None
    mode: int | None = None


# Namespace keys of which stackd has only the host's, and what the container gets else.
_HOST_ONLY = {
    "userns_mode": "containers run in the host's user namespace (userns_mode: host)",
    "uts": "give host, or leave it out for the container's own hostname",
}

RESTART = re.compile(r"no|always|unless-stopped|on-failure(:\d+)?")
DEVICE_RULE = re.compile(r"\s*[abc]\s+(\*|\d+):(\*|\d+)\s+[rwm]{1,3}\s*")


class Service(Node):
    image: str | None = None
    build: Build | None = None
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    environment: dict[str, str | None] = Field(default_factory=dict)
    env_file: tuple[EnvFile, ...] = ()
    working_dir: WorkingDir | None = None
    user: str | None = None
    hostname: str | None = None
    domainname: str | None = None
    container_name: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    ports: tuple[Port, ...] = ()
    expose: tuple[str, ...] = ()
    networks: dict[str, ServiceNetwork] = Field(default_factory=dict)
    network_mode: str | None = None
    links: tuple[str, ...] = ()
    volumes: tuple[ServiceVolume, ...] = ()
    volumes_from: tuple[str, ...] = ()
    tmpfs: tuple[str, ...] = ()
    devices: tuple[DeviceMapping, ...] = ()
    depends_on: dict[str, Dependency] = Field(default_factory=dict)
    healthcheck: Healthcheck | None = None
    restart: str | None = None
    deploy: Deploy | None = None
    scale: int | None = Field(default=None, ge=0)
    init: bool | None = None
    tty: bool = False
    stdin_open: bool = False
    stop_signal: str | None = None
    stop_grace_period: Duration | None = None
    ulimits: dict[str, Ulimit] = Field(default_factory=dict)
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    privileged: bool = False
    read_only: bool = False
    security_opt: tuple[str, ...] = ()
    sysctls: dict[str, str] = Field(default_factory=dict)
    shm_size: ByteSize | None = None
    mem_limit: MemoryLimit | None = None
    # What placement needs free on a node, as deploy.resources.reservations.memory
    # (stackd/scheduler/from_stack.py); not a soft limit in the container's cgroup.
    mem_reservation: ByteSize | None = None
    develop: Develop | None = None  # `stackd watch`'s rules; `up` leaves them be
    post_start: tuple[Hook, ...] = ()
    pre_stop: tuple[Hook, ...] = ()
    memswap_limit: ByteSize | None = None
    mem_swappiness: int | None = Field(default=None, ge=0, le=100)
    oom_kill_disable: bool = False
    # devices.allow lines beyond Docker's list and `devices`: `c 188:* rmw`
    device_cgroup_rules: tuple[str, ...] = ()
    blkio_config: BlkioConfig | None = None
    cpus: float | None = Field(default=None, ge=0)
    cpu_shares: int | None = None
    # The CFS limit as Docker's --cpu-quota/--cpu-period (µs); `cpus` is the short form.
    cpu_quota: int | None = Field(default=None, ge=1000)
    cpu_period: int | None = Field(default=None, ge=1000, le=1_000_000)
    cpuset: str | None = None  # the CPUs it may run on: "0-2", "0,3"
    pids_limit: int | None = None
    pid: str | None = None
    ipc: str | None = None
    uts: str | None = None  # only "host": the host's hostname
    oom_score_adj: int | None = Field(default=None, ge=-1000, le=1000)
    # Only "host" (the host's user namespace: what every container here gets).
    userns_mode: str | None = None
    group_add: tuple[str, ...] = ()
    logging: Logging | None = None
    extra_hosts: tuple[str, ...] = ()  # "host=ip"
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_opt: tuple[str, ...] = ()
    pull_policy: str | None = None
    profiles: tuple[str, ...] = ()
    platform: str | None = None
    # `up` follows the logs of the services with attach true (Compose's default).
    attach: bool = True
    # The cgroup namespace: private (the default) or the host's.
    cgroup: str | None = None
    mac_address: str | None = None
    configs: tuple[FileReference, ...] = ()
    secrets: tuple[FileReference, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _canonical(cls, data: Any) -> Any:
        from stackd.spec.canonical import canonical_service

        if isinstance(data, Mapping):
            return canonical_service("", data, None)
        return data

    @field_validator("restart")
    @classmethod
    def _restart_form(cls, v: str | None) -> str | None:
        if v is not None and not RESTART.fullmatch(v):
            raise ValueError(
                f"{v!r} must be one of no, always, on-failure[:N], unless-stopped")
        return v

    @field_validator("pull_policy")
    @classmethod
    def _pull_policy_form(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(
            r"always|never|missing|build|daily|weekly|every_\w+", v
        ):
            raise ValueError(
                f"{v!r} must be one of always, never, missing, build, daily, weekly")
        return v

    @field_validator("cpus", mode="before")
    @classmethod
    def _cpus_text(cls, v: Any) -> Any:
        return float(v) if isinstance(v, str) and _is_number(v) else v

    @field_validator("device_cgroup_rules")
    @classmethod
    def _device_rules(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for rule in v:
            if not DEVICE_RULE.fullmatch(rule):
                raise ValueError(f"{rule!r} is not `TYPE MAJOR:MINOR ACCESS` (e.g. "
                                 "'c 188:* rmw': type a, b or c; * for any number; "
                                 "access of r, w, m)")
        return tuple(" ".join(rule.split()) for rule in v)

    @field_validator("labels")
    @classmethod
    def _not_stackds(cls, v: dict[str, str]) -> dict[str, str]:
        return _no_reserved_labels(v)

    @field_validator("tmpfs")
    @classmethod
    def _tmpfs_lines(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for line in v:
            parse_tmpfs(line)  # a ValueError names the line and the option
        return v

    @field_validator("cpuset")
    @classmethod
    def _cpu_list(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"\d+(-\d+)?(,\d+(-\d+)?)*", v):
            raise ValueError(f"{v!r} is not a list of CPUs (e.g. 0-2 or 0,3)")
        return v

    @model_validator(mode="after")
    def _one_cpu_limit(self) -> Service:
        if self.cpu_quota is not None and self.cpus:
            raise ValueError("cpus and cpu_quota both limit the CPU: give one of them")
        if self.scale is not None and self.deploy is not None and self.deploy.mode == "global":
            raise ValueError(only_replicated("scale"))
        if self.uts == "host" and self.hostname:
            raise ValueError("hostname with uts: host: the host's hostname is shared, "
                             "give one of them")
        return self

    @field_validator("userns_mode", "uts")
    @classmethod
    def _host_only(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v not in (None, "host"):
            raise ValueError(f"{v!r} is not supported yet: {_HOST_ONLY[str(info.field_name)]}")
        return v

    @field_validator("cgroup")
    @classmethod
    def _cgroup_form(cls, v: str | None) -> str | None:
        if v not in (None, "private", "host"):
            raise ValueError(f"cgroup {v!r} must be host or private")
        return v

    @field_validator("platform")
    @classmethod
    def _platform_form(cls, v: str | None) -> str | None:
        # `platform: ${DOCKER_PLATFORM:-}` (getsentry/self-hosted): empty is unset, as
        # for compose.
        return _check_platform(v) if v else None

    @property
    def replicas(self) -> int:
        """How many containers the service wants: deploy.replicas, else scale, else 1."""
        if self.deploy is not None and self.deploy.replicas is not None:
            return self.deploy.replicas
        return 1 if self.scale is None else self.scale

    def networks_in_order(self) -> list[tuple[str, ServiceNetwork]]:
        """Its networks as its containers join them: by priority, then by key; the
        first carries the default route (and is where a port is published)."""
        return sorted(self.networks.items(), key=lambda kv: (-(kv[1].priority or 0), kv[0]))

    def restart_policy(self) -> tuple[str, int | None]:
        """`restart` as (name, max retries): ("on-failure", 3), ("always", None)…"""
        name, _, count = (self.restart or "no").partition(":")
        return name, int(count) if count else None


# ------------------------------------------------------------------------ top level


class IpamPool(Node):
    subnet: str | None = None
    ip_range: str | None = None
    gateway: str | None = None
    aux_addresses: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _inside_the_subnet(self) -> IpamPool:
        from ipaddress import IPv4Address, IPv4Network

        if self.subnet is not None and ":" in self.subnet:
            raise ValueError(f"subnet {self.subnet!r}: IPv6 is not supported yet "
                             "(stackd's networks are IPv4 only)")
        if (self.ip_range is not None or self.aux_addresses) and self.subnet is None:
            raise ValueError("ip_range and aux_addresses need the subnet they are part of")
        subnet = IPv4Network(self.subnet, strict=False) if self.subnet else None
        if self.ip_range is not None:
            try:
                ranged = IPv4Network(self.ip_range)
            except ValueError:
                raise ValueError(f"ip_range {self.ip_range!r} is not an IPv4 network "
                                 "(e.g. 172.28.5.0/24)") from None
            if subnet is not None and not ranged.subnet_of(subnet):
                raise ValueError(f"ip_range {ranged} is not inside subnet {subnet}")
        for host, ip in self.aux_addresses.items():
            try:
                inside = subnet is not None and IPv4Address(ip) in subnet
            except ValueError:
                inside = False
            if not inside:
                raise ValueError(f"aux_addresses {host}: {ip!r} is not an address of "
                                 f"subnet {subnet}")
        return self


class Ipam(Node):
    driver: str | None = None
    config: tuple[IpamPool, ...] = ()
    options: dict[str, str] = Field(default_factory=dict)

    @field_validator("config")
    @classmethod
    def _one_pool(cls, v: tuple[IpamPool, ...]) -> tuple[IpamPool, ...]:
        if len(v) > 1:
            raise ValueError("more than one pool is not supported yet: a stackd network "
                             "has one IPv4 subnet")
        return v


class Network(Node):
    name: str | None = None

    @field_validator("name")
    @classmethod
    def _empty_name_is_unset(cls, v: str | None) -> str | None:
        # `name: ${VAR}` with VAR empty (penpot's devenv): compose-go names it as if
        # unset, from the project and the key.
        return v or None
    driver: str | None = None
    driver_opts: dict[str, str] = Field(default_factory=dict)
    ipam: Ipam | None = None
    external: bool = False
    internal: bool = False
    attachable: bool = False
    enable_ipv6: bool = False
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("enable_ipv6")
    @classmethod
    def _ipv4_only(cls, v: bool) -> bool:
        if v:
            raise ValueError("IPv6 is not supported yet: stackd's networks are IPv4 only "
                             "(leave enable_ipv6 out)")
        return v

    @field_validator("labels")
    @classmethod
    def _not_stackds_labels(cls, v: dict[str, str]) -> dict[str, str]:
        return _no_reserved_labels(v)

    @model_validator(mode="after")
    def _options_stackd_follows(self) -> Network:
        if self.external:
            return self  # its options are its creator's
        for key, value in sorted(self.driver_opts.items()):
            if key not in NETWORK_OPTIONS:
                raise ValueError(
                    f"driver_opts: {key!r} is not supported yet (stackd's bridges take "
                    f"{', '.join(NETWORK_OPTIONS)})")
            if key == ICC_OPTION and value.lower() not in _GO_BOOLS:
                raise ValueError(f"driver_opts: {key} must be true or false, not {value!r}")
            if key == HOST_BINDING_OPTION and not _is_ipv4(value):
                raise ValueError(f"driver_opts: {key} must be an IPv4 address, not {value!r}")
        if not self.icc and self.driver not in (None, "bridge"):
            raise ValueError(f"driver_opts: {ICC_OPTION} false is for bridge networks; "
                             f"the {self.driver} driver does not take it")
        return self

    @property
    def icc(self) -> bool:
        """Whether its containers reach each other (Docker's inter-container
        communication); false: each reaches only the gateway, DNS and published ports."""
        return self.driver_opts.get(ICC_OPTION, "true").lower() not in _GO_FALSE

    @property
    def host_binding_ipv4(self) -> str | None:
        """The host address a port is published on when the port names none."""
        return self.driver_opts.get(HOST_BINDING_OPTION) if not self.external else None


class Volume(Node):
    name: str | None = None

    @field_validator("name")
    @classmethod
    def _empty_name_is_unset(cls, v: str | None) -> str | None:
        # `name: ${VAR}` with VAR empty (penpot's devenv): compose-go names it as if
        # unset, from the project and the key.
        return v or None
    driver: str | None = None
    driver_opts: dict[str, str] = Field(default_factory=dict)
    external: bool = False
    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _local_directory_or_bind(self) -> Volume:
        if self.external:
            return self
        if self.driver not in (None, "local"):
            raise ValueError(f"volume driver {self.driver!r} is not supported: stackd's "
                             "volumes are local directories (leave driver out, or local)")
        if self.driver_opts and self.bind_device is None:
            raise ValueError(
                "driver_opts: stackd's local volumes take them only as a bind of a host "
                "directory (type: none, o: bind, device: /path); "
                f"{dict(sorted(self.driver_opts.items()))} is not supported yet")
        return self

    @property
    def bind_device(self) -> str | None:
        """The host directory a local volume binds (Docker's `type: none, o: bind,
        device: DIR`; `rbind` too), its data kept there: None for a volume of stackd's."""
        opts = self.driver_opts
        if (not self.external and set(opts) <= {"type", "o", "device"}
                and opts.get("type", "none") in ("none", "bind")
                and opts.get("o") in ("bind", "rbind")
                and opts.get("device", "").startswith("/")):
            return opts["device"]
        return None


class FileObject(Node):
    """A top-level config or secret: from a file, an environment variable or inline."""

    name: str | None = None
    file: str | None = None
    environment: str | None = None
    content: str | None = None
    external: bool = False
    labels: dict[str, str] = Field(default_factory=dict)


class Stack(Node):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    services: dict[str, Service] = Field(default_factory=dict)
    networks: dict[str, Network] = Field(default_factory=dict)
    volumes: dict[str, Volume] = Field(default_factory=dict)
    configs: dict[str, FileObject] = Field(default_factory=dict)
    secrets: dict[str, FileObject] = Field(default_factory=dict)

    # Outside the fields on purpose: where things came from is not part of what the
    # stack *is*, so two stacks from differently formatted files compare equal.
    _locations: dict[Path, Location] = PrivateAttr(default_factory=dict)
    _warnings: tuple[str, ...] = PrivateAttr(default=())
    _disabled: frozenset[str] = PrivateAttr(default=frozenset())
    _files: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="before")
    @classmethod
    def _canonical(cls, data: Any) -> Any:
        from stackd.spec.canonical import canonical_stack

        if isinstance(data, Mapping):
            return canonical_stack(data)
        return data

    def __eq__(self, other: object) -> bool:
        # Fields only: pydantic would also compare the private place table.
        if not isinstance(other, Stack):
            return NotImplemented
        return self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return super().__hash__()

    def network_host_name(self, key: str) -> str:
        """The host's name of network `key`: its `name:`, else (as compose-go names
        them) the key itself for an external one, `<project>_<key>` for the stack's."""
        return _host_name(self.name, key, self.networks.get(key))

    def volume_host_name(self, key: str) -> str:
        """The host's name of volume `key`, by the networks' rule."""
        return _host_name(self.name, key, self.volumes.get(key))

    def location_of(self, path: Path) -> Location | None:
        """Where `path` was written, or the nearest enclosing element that has a place.

        `("services", "web", "depends_on", "db")` → compose.yaml:12:9. None for stacks
        not read from files.
        """
        for end in range(len(path), 0, -1):
            loc = self._locations.get(tuple(path[:end]))
            if loc is not None:
                return loc
        return None

    @property
    def warnings(self) -> tuple[str, ...]:
        """What loading noticed but did not refuse (e.g. unset variables)."""
        return self._warnings

    @property
    def disabled(self) -> frozenset[str]:
        """Services of the files that their profiles left out (none once restored
        from JSON: only a load from the files knows them)."""
        return self._disabled

    @property
    def source_files(self) -> tuple[str, ...]:
        """The stack files it was loaded from, in merge order (absolute paths, "-" for
        stdin): those -f gave, $COMPOSE_FILE named or discovery found. None once
        restored from JSON."""
        return self._files

    def to_compose(self) -> dict[str, Any]:
        """The stack as a compose document (long syntax, defaults left out)."""
        out: dict[str, Any] = self.model_dump(mode="json", exclude_defaults=True)
        out["name"] = self.name
        return out


def _host_name(project: str, key: str, declared: Network | Volume | None) -> str:
    if declared is not None and declared.name:
        return declared.name
    if declared is not None and declared.external:
        return key
    return f"{project}_{key}"


def _check_platform(text: str) -> str:
    if not re.fullmatch(r"[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?", text):
        raise ValueError(f"platform {text!r} must look like os/arch[/variant], "
                         "e.g. linux/amd64 or linux/arm64")
    return text


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted(((k, _freeze(v)) for k, v in value.items()), key=repr))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _is_extension(key: object) -> bool:
    return isinstance(key, str) and key.startswith("x-")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
