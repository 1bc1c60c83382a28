"""Stack + resolved images → DesiredState. Pure: every input is an argument.

Per replica slot: a ContainerSpec with the image's defaults merged as Docker merges
them (entrypoint/cmd, env, working dir, user, stop signal, healthcheck, VOLUMEs),
configs and secrets placed read-only at `/<name>` and `/run/secrets/<name>`, named
volumes as directories under the state root, the networks to join and ports to
publish; and the config hash over the resulting spec (`hash.py`).
File contents (config/secret `file:`) come through `read_file`, environment-sourced
ones from `environ`, so the function stays testable without a disk.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stackd import hostnames
from stackd.errors import SpecError
from stackd.netbridge.model import Attachment, NetworkSpec, PortBinding, check_interface_names
from stackd.reconciler.desired import (
    DependsOn,
    DesiredContainer,
    DesiredService,
    DesiredState,
    FileToWrite,
    container_id,
    slot_container,
)
from stackd.reconciler.hash import ConfigHash, config_hash
from stackd.reconciler.health import (
    HealthCheck,
    from_image,
    probe_args,
    too_fast,
)
from stackd.reconciler.hooks import hooks_label
from stackd.reconciler.imagedefaults import merge_env, process_args
from stackd.reconciler.ports import ImageConfigView, ImageView
from stackd.reconciler.published import published_ports
from stackd.reconciler.restart import RestartPolicy, from_deploy, parse_restart
from stackd.runtime.containerspec import (
    BlkioLimit,
    ContainerSpec,
    Device,
    LogConfig,
    Mount,
    Namespaces,
    ProcessSpec,
    Resources,
    Rlimit,
    Security,
)
from stackd.scheduler import build_graph, start_waves
from stackd.scheduler.from_stack import from_stack
from stackd.spec.image_names import image_ref
from stackd.spec.model import FileReference, Service, Stack, UpdateConfig, VolumeOptions
from stackd.spec.tmpfs import Tmpfs, parse_tmpfs

DEFAULT_FILE_MODE = 0o444  # Compose's default for configs and secrets


@dataclass(frozen=True, slots=True)
class TranslateInputs:
    """What besides the stack and its images the desired state depends on."""

    volume_path: Callable[[str], str]  # volume host name → host directory
    file_path: Callable[[str], str]  # content digest → host path for a FileToWrite
    read_file: Callable[[str], bytes]  # config/secret `file:` → its bytes
    environ: Mapping[str, str] = field(default_factory=dict)  # for `environment:` sources
    scale: Mapping[str, int] = field(default_factory=dict)  # --scale svc=n
    # A rollback revision: rolling updates follow deploy.rollback_config (if given).
    rolling_back: bool = False
    # Cluster mode: service → the slot indices this node holds (docs/cluster.md); a
    # service not named runs none here. None: every slot (one host).
    slots: Mapping[str, frozenset[int]] | None = None
    # container id → where its network namespace is mounted (`network_mode:
    # service:x` joins x's first container's).
    netns_path: Callable[[str], str] = lambda cid: f"/run/stackd/netns/{cid}"


def network_driver(driver: str | None, *, cluster: bool) -> str:
    """A stack network's driver: on a cluster node every bridge network is an overlay
    across the nodes (docs/cluster.md), so replicas on different nodes meet on it."""
    if cluster and driver in (None, "bridge"):
        return "overlay"
    return driver or "bridge"


def update_policy(svc: Service, rolling_back: bool) -> UpdateConfig | None:
    """How a service's changed replicas are rolled: deploy.update_config, or while a
    rollback revision is applied deploy.rollback_config (else update_config)."""
    deploy = svc.deploy
    if deploy is None:
        return None
    if rolling_back and deploy.rollback_config is not None:
        return deploy.rollback_config
    return deploy.update_config


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _seconds(td: object, default: float) -> float:
    total = getattr(td, "total_seconds", None)
    return float(total()) if callable(total) else default


def healthcheck_of(svc: Service, image: ImageView) -> HealthCheck | None:
    """The service's healthcheck, else the image's; timings the service sets win."""
    hc = svc.healthcheck
    from_img = from_image(image.config.healthcheck)
    if hc is None:
        if from_img is not None and (name := too_fast(from_img)):
            # Docker refuses the container; its probes would run without pause.
            raise SpecError(f"image {svc.image or '(built)'}: its HEALTHCHECK {name} is "
                            "less than 1ms", hint="give the service healthcheck: timings "
                                                  "of its own, or fix the image")
        return from_img
    if hc.disabled:
        return None
    if hc.test is not None:
        args = probe_args(hc.test)
    elif from_img is not None:
        args = from_img.args
    else:
        return None
    if args is None:
        return None
    # As Docker merges them: what the service leaves unset, or 0, is the image's (its
    # HEALTHCHECK's, else the default) — not a probe without pause, nor a timeout at once.
    base = from_img or HealthCheck(args=args)
    return HealthCheck(
        args=args,
        interval=_seconds(hc.interval, 0.0) or base.interval,
        timeout=_seconds(hc.timeout, 0.0) or base.timeout,
        retries=hc.retries or base.retries,
        start_period=_seconds(hc.start_period, 0.0) or base.start_period,
        start_interval=_seconds(hc.start_interval, 0.0) or base.start_interval,
    )


def restart_of(svc: Service) -> RestartPolicy:
    rp = svc.deploy.restart_policy if svc.deploy is not None else None
    if rp is not None:
        delay = _seconds(rp.delay, 0.0)
        window = _seconds(rp.window, 0.0)
        return from_deploy(rp.condition, delay=delay or None, max_attempts=rp.max_attempts,
                           window=window or None)
    return parse_restart(svc.restart or "no")


def _x_stackd(svc: Service) -> Mapping[str, object]:
    ext = svc.extensions.get("x-stackd")
    return ext if isinstance(ext, Mapping) else {}


def _file_content(stack: Stack, kind: str, ref: FileReference, inputs: TranslateInputs,
                  where: tuple[str | int, ...]) -> bytes:
    objs = stack.configs if kind == "configs" else stack.secrets
    obj = objs[ref.source]  # spec.finalize has checked that it is declared
    loc = stack.location_of(where)
    if obj.content is not None:
        return obj.content.encode()
    if obj.environment is not None:
        if obj.environment not in inputs.environ:
            raise SpecError(f"{kind[:-1]} {ref.source!r}: environment variable "
                            f"{obj.environment} is not set", location=loc,
                            hint=f"export {obj.environment} in the shell that runs stackd")
        return inputs.environ[obj.environment].encode()
    if obj.file is not None:
        try:
            return inputs.read_file(obj.file)
        except OSError as err:
            raise SpecError(f"{kind[:-1]} {ref.source!r}: cannot read {obj.file}: "
                            f"{err.strerror}", location=loc) from None
    raise SpecError(f"{kind[:-1]} {ref.source!r} has no file, content or environment",
                    location=loc, hint="external configs/secrets are not supported yet")


@dataclass
class _ServiceParts:
    """Everything of one service's containers that does not vary by slot."""

    spec: ContainerSpec
    config_hash: ConfigHash
    attachments: tuple[Attachment, ...]
    ports: tuple[PortBinding, ...]
    volumes: tuple[str, ...]
    files_to_write: tuple[FileToWrite, ...]
    anonymous: tuple[str, ...]  # image VOLUME paths not otherwise mounted


def _process(stack: Stack, name: str, svc: Service, cfg: ImageConfigView) -> ProcessSpec:
    args = process_args(cfg.entrypoint, cfg.cmd, svc.entrypoint, svc.command)
    if not args:
        raise SpecError(f"service {name!r} has no command: its image sets neither "
                        "ENTRYPOINT nor CMD", location=stack.location_of(("services", name)),
                        hint="add `command:` to the service")
    env = merge_env(cfg.env, svc.environment)
    rlimits = tuple(Rlimit(type=k, soft=u.soft, hard=u.hard)
                    for k, u in sorted(svc.ulimits.items()))
    return ProcessSpec(args=args, env=tuple(f"{k}={v}" for k, v in env.items()),
                       cwd=svc.working_dir or cfg.working_dir or "/",
                       user=svc.user or cfg.user or "", additional_groups=svc.group_add,
                       terminal=svc.tty, stdin_open=svc.stdin_open, rlimits=rlimits,
                       init=bool(svc.init), oom_score_adj=svc.oom_score_adj)


def _host_dirs(svc: Service) -> tuple[str, ...]:
    """The bind sources to make when missing (Docker's -v: an absent source becomes a
    directory), unless the bind says create_host_path: false."""
    return tuple(v.source for v in svc.volumes
                 if v.type == "bind" and v.source
                 and (v.bind is None or v.bind.create_host_path))


def _volume_mounts(stack: Stack, svc: Service, inputs: TranslateInputs
                   ) -> tuple[list[Mount], list[str]]:
    """`volumes:` and `tmpfs:` → mounts, and the host names of the named volumes used.
    An anonymous volume keeps an empty source: it is named per slot."""
    mounts: list[Mount] = []
    volumes: list[str] = []
    for v in svc.volumes:
        if v.type == "bind":
            mounts.append(Mount(type="bind", source=v.source or "", target=v.target,
                                readonly=v.read_only))
        elif v.type == "tmpfs":
            # Docker's tmpfs is noexec; the long syntax has no option to change that.
            mounts.append(Mount(type="tmpfs", target=v.target, noexec=True,
                                size=v.tmpfs.size if v.tmpfs else None,
                                mode=v.tmpfs.mode if v.tmpfs else None))
        elif v.source is None:
            mounts.append(Mount(type="volume", source="", target=v.target,
                                readonly=v.read_only))
        else:
            host = stack.volume_host_name(v.source)
            volumes.append(host)
            options = v.volume or VolumeOptions()
            # A volume that binds a host directory keeps its data there (Docker's local
            # driver mounts it as the volume); it is still seeded from the image if empty.
            declared = stack.volumes.get(v.source)
            device = declared.bind_device if declared is not None else None
            mounts.append(Mount(type="volume", source=device or inputs.volume_path(host),
                                target=v.target, seed_plain=device is not None,
                                readonly=v.read_only, seed=not options.nocopy,
                                subpath=options.subpath or ""))
    for line in svc.tmpfs:
        mounts.append(tmpfs_mount(parse_tmpfs(line)))
    return mounts, volumes


def tmpfs_mount(t: Tmpfs) -> Mount:
    """A `tmpfs:` line (or `run --tmpfs`) as the runtime mounts it."""
    return Mount(type="tmpfs", target=t.target, size=t.size, mode=t.mode, uid=t.uid,
                 gid=t.gid, noexec=not t.exec, readonly=t.readonly)


def _config_files(stack: Stack, name: str, svc: Service, inputs: TranslateInputs
                  ) -> tuple[dict[str, str], list[FileToWrite], list[Mount]]:
    """configs and secrets: text with the default owner and mode goes into the spec's
    `files`; anything else becomes a host file bind-mounted read-only."""
    files: dict[str, str] = {}
    to_write: list[FileToWrite] = []
    mounts: list[Mount] = []
    for kind, default_dir in (("configs", "/"), ("secrets", "/run/secrets/")):
        refs: Sequence[FileReference] = svc.configs if kind == "configs" else svc.secrets
        for i, ref in enumerate(refs):
            content = _file_content(stack, kind, ref, inputs, ("services", name, kind, i))
            target = ref.target or f"{default_dir}{ref.source}"
            if not target.startswith("/"):
                target = f"{default_dir}{target}"
            mode = ref.mode if ref.mode is not None else DEFAULT_FILE_MODE
            uid, gid = int(ref.uid or 0), int(ref.gid or 0)
            if (uid, gid, mode) == (0, 0, DEFAULT_FILE_MODE):
                try:
                    files[target] = content.decode()
                    continue
                except UnicodeDecodeError:
                    pass  # binary content: only a file on disk can carry it
            # The path names the content, owner and mode, so the mount (and with it the
            # config hash) changes whenever any of them does.
            digest = _sha(content + f"{uid}:{gid}:{mode:o}".encode())
            path = inputs.file_path(digest)
            to_write.append(FileToWrite(path, content, uid, gid, mode))
            mounts.append(Mount(type="bind", source=path, target=target, readonly=True))
    return files, to_write, mounts


def _network(stack: Stack, name: str, svc: Service, joined: Callable[[str, str], str]
             ) -> tuple[str, tuple[Attachment, ...]]:
    """The net namespace ("new", "host", or the path of another container's) and the
    networks joined, by priority. `joined`: (kind, service) → the namespace of the
    service's first container."""
    mode = svc.network_mode
    if mode == "host":
        return "host", ()
    if mode == "none":
        return "new", ()
    where = stack.location_of(("services", name, "network_mode"))
    if mode is not None and mode.startswith("service:"):
        if svc.ports:
            raise SpecError(f"service {name!r}: network_mode {mode!r} shares another "
                            "container's network, so it publishes no ports of its own",
                            location=stack.location_of(("services", name, "ports")),
                            hint=f"publish them on service {mode.partition(':')[2]!r}")
        return joined("net", mode.partition(":")[2]), ()
    if mode is not None:
        raise SpecError(f"service {name!r}: network_mode {mode!r} is not supported yet",
                        location=where,
                        hint="use networks:, service:NAME, or network_mode host or none")
    order = svc.networks_in_order()
    # A container_name answers in DNS as the slot's `<project>-<service>-1` would.
    own = (svc.container_name,) if svc.container_name else ()
    linked = link_aliases(svc)
    attachments = tuple(
        Attachment(network_key=stack.network_host_name(key),
                   aliases=(name, *own, *sn.aliases), ipv4_address=sn.ipv4_address,
                   # A service-level mac_address is the first (default-route) network's.
                   mac_address=sn.mac_address or (svc.mac_address if i == 0 else None),
                   interface_name=sn.interface_name, links=linked)
        for i, (key, sn) in enumerate(order))
    check_interface_names(name, attachments)
    return "new", attachments


def _shared(stack: Stack, name: str, kind: str, mode: str | None,
            joined: Callable[[str, str], str]) -> str:
    """`pid:` / `ipc:` → the namespace: "host" shares the host's; Docker's ipc
    "private" and "shareable" are a new one, as none is given; `service:x` is x's first
    container's. A container outside the stack (`container:x`) is refused by name,
    not ignored."""
    own = (None, "") if kind == "pid" else (None, "", "private", "shareable")
    if mode in own:
        return "new"
    if mode == "host":
        return "host"
    if mode is not None and mode.startswith("service:"):
        return joined(kind, mode.partition(":")[2])
    raise SpecError(f"service {name!r}: {kind} {mode!r} is not supported yet",
                    location=stack.location_of(("services", name, kind)),
                    hint=f"use {kind}: host, {kind}: service:NAME for a service of this "
                         "stack, or leave it out for the container's own")


def _log(svc: Service) -> LogConfig:
    """json-file's max-size and max-file (the spec checked the rest of `logging:`)."""
    default = LogConfig()
    if svc.logging is None:
        return default
    return LogConfig(max_size=svc.logging.max_size or default.max_size,
                     max_files=svc.logging.max_files or default.max_files)


def _resources(svc: Service) -> Resources:
    limits = svc.deploy.resources.limits if svc.deploy and svc.deploy.resources else None
    memory = svc.mem_limit or (limits.memory if limits else None)
    cpus = svc.cpus or (limits.cpus if limits else None)
    pids = svc.pids_limit or (limits.pids if limits else None)
    period = svc.cpu_period or 100_000
    return Resources(
        memory=memory, memory_swap=svc.memswap_limit,
        cpu_quota=int(cpus * period) if cpus else svc.cpu_quota,
        **({"cpu_period": period} if svc.cpu_period else {}),
        cpuset_cpus=svc.cpuset, cpu_shares=svc.cpu_shares,
        pids_limit=pids if pids and pids > 0 else None,
        **({"shm_size": svc.shm_size} if svc.shm_size else {}),
        memory_swappiness=svc.mem_swappiness, oom_kill_disable=svc.oom_kill_disable,
        **_blkio(svc),
    )


def _blkio(svc: Service) -> dict[str, Any]:
    """blkio_config as the runtime's limits; the devices' numbers are the host's, read
    when a container is created."""
    cfg = svc.blkio_config
    if cfg is None:
        return {}
    limits = [BlkioLimit(path=w.path, limit="weight", value=w.weight)
              for w in cfg.weight_device]
    for limit, rates in (("read_bps", cfg.device_read_bps), ("write_bps", cfg.device_write_bps),
                         ("read_iops", cfg.device_read_iops),
                         ("write_iops", cfg.device_write_iops)):
        limits += [BlkioLimit(path=r.path, limit=limit, value=r.rate) for r in rates]
    return {"blkio_weight": cfg.weight, "blkio_devices": tuple(limits)}


def _security(svc: Service) -> Security:
    seccomp, nnp = "default", None
    for opt in svc.security_opt:
        key, _, val = opt.replace(":", "=", 1).partition("=")
        if key == "seccomp":
            seccomp = val
        elif key == "no-new-privileges":
            nnp = val in ("", "true")
    return Security(privileged=svc.privileged, cap_add=svc.cap_add, cap_drop=svc.cap_drop,
                    no_new_privileges=nnp, seccomp=seccomp, sysctls=dict(svc.sysctls))


def _service_parts(stack: Stack, name: str, svc: Service, image: ImageView,
                   inputs: TranslateInputs, joined: Callable[[str, str], str]
                   ) -> _ServiceParts:
    cfg = image.config
    mounts, volumes = _volume_mounts(stack, svc, inputs)
    covered = {m.target for m in mounts}
    anonymous = tuple(p for p in sorted(cfg.volumes) if p not in covered)
    files, to_write, file_mounts = _config_files(stack, name, svc, inputs)
    net_ns, attachments = _network(stack, name, svc, joined)
    # Replica 1's ports stand for the service's in the hash (the others follow from them).
    ports = tuple(published_ports(stack, name, 1))
    spec = ContainerSpec(
        id="pending", name="pending", labels={**svc.labels, **hooks_label(svc)},
        annotations=dict(svc.annotations), layers=tuple(image.layer_dirs),
        readonly_rootfs=svc.read_only,
        process=_process(stack, name, svc, cfg),
        hostname=svc.hostname or "", domainname=svc.domainname or "",
        mounts=(*mounts, *file_mounts), files=files,
        namespaces=Namespaces(net=net_ns, pid=_shared(stack, name, "pid", svc.pid, joined),
                              ipc=_shared(stack, name, "ipc", svc.ipc, joined),
                              uts="host" if svc.uts == "host" else "new",
                              cgroup="host" if svc.cgroup == "host" else "new"),
        devices=tuple(Device(source=d.source, target=d.target, permissions=d.permissions)
                      for d in svc.devices),
        device_cgroup_rules=svc.device_cgroup_rules,
        extra_hosts=svc.extra_hosts, dns=svc.dns, dns_search=svc.dns_search,
        dns_options=svc.dns_opt,
        resources=_resources(svc), security=_security(svc),
        stop_signal=svc.stop_signal or cfg.stop_signal or "SIGTERM",
        stop_grace=_seconds(svc.stop_grace_period, 10.0),
        log=_log(svc),
    )
    # Computed before the slot fills in its id, name, hostname and anonymous volume
    # paths: those differ by index and would make every slot's hash different.
    digest = config_hash(
        spec, image={"ref": image_ref(stack, name, svc), "id": image.id,
                     "digest": image.digest},
        attachments=attachments, ports=ports, healthcheck=healthcheck_of(svc, image),
        container_name=svc.container_name)
    return _ServiceParts(spec, digest, attachments, ports, tuple(sorted(set(volumes))),
                         tuple(to_write), anonymous)


def _slot(stack: Stack, name: str, index: int, parts: _ServiceParts,
          inputs: TranslateInputs) -> tuple[DesiredContainer, list[str]]:
    """One replica; anonymous volumes (image VOLUMEs, `- /path`) are named per slot."""
    spec, volumes = parts.spec, list(parts.volumes)
    anon_mounts: list[Mount] = []
    for target in parts.anonymous:
        anon_mounts.append(Mount(type="volume", source="", target=target))
    mounts: list[Mount] = []
    anonymous: list[str] = []
    for m in (*spec.mounts, *anon_mounts):
        if m.type == "volume" and not m.source:
            vol = f"{stack.name}_{name}-{index}_{_sha(m.target.encode())[:8]}"
            volumes.append(vol)
            anonymous.append(vol)
            m = m.model_copy(update={"source": inputs.volume_path(vol)})
        mounts.append(m)
    fixed_name = stack.services[name].container_name
    hostname = spec.hostname or hostnames.container_name(stack.name, name, index, fixed_name)
    spec = spec.model_copy(update={
        "mounts": tuple(mounts), "hostname": hostname,
        "labels": {**spec.labels,
                   hostnames.LABEL_IMAGE: image_ref(stack, name, stack.services[name])}})
    container = slot_container(stack.name, name, index, spec, parts.config_hash,
                               attachments=parts.attachments,
                               ports=published_ports(stack, name, index),
                               volumes=tuple(sorted(set(volumes))),
                               anonymous=tuple(sorted(set(anonymous))),
                               host_files=parts.files_to_write,
                               host_dirs=_host_dirs(stack.services[name]),
                               fixed_name=fixed_name)
    return container, volumes


def _check_published(stack: Stack, containers: list[DesiredContainer]) -> None:
    """Two services publishing one host port are refused before anything starts: at
    attach time the second would fail with the first already running. (A service's
    replicas share theirs: one balanced rule.)"""
    seen: dict[tuple[int, str], list[tuple[str, PortBinding]]] = {}
    for c in containers:
        for i, b in enumerate(c.ports):
            if any(b.overlaps(other) for other in c.ports[:i]):
                raise SpecError(f"service {c.service!r} publishes host port "
                                f"{b.host_port}/{b.protocol} twice",
                                location=stack.location_of(("services", c.service, "ports")),
                                hint="publish each host port once")
            claims = seen.setdefault((b.host_port, b.protocol), [])
            for service, other in claims:
                if service != c.service and b.overlaps(other):
                    raise SpecError(
                        f"services {service!r} and {c.service!r} both publish host port "
                        f"{b.host_port}/{b.protocol}",
                        location=stack.location_of(("services", c.service, "ports")),
                        hint="give one of them another host port (replicas of one "
                             "service share theirs)")
            claims.append((c.service, b))


def link_aliases(svc: Service) -> tuple[tuple[str, str], ...]:
    """(alias, service) of each of the service's `links: [service:alias]`, sorted: what
    DNS answers to its containers alone (Docker's). Pure."""
    found: set[tuple[str, str]] = set()
    for link in svc.links:
        target, _, alias = link.partition(":")
        if alias and alias != target:
            found.add((alias, target))
    return tuple(sorted(found))


def desired_state(stack: Stack, images: Mapping[str, ImageView], inputs: TranslateInputs
                  ) -> DesiredState:
    """The desired state of `stack`; `images` maps service name → its resolved image."""
    graph = build_graph(from_stack(stack))
    waves = tuple(tuple(w) for w in start_waves(graph))
    services: dict[str, DesiredService] = {}
    containers: list[DesiredContainer] = []
    volumes: set[str] = set()
    first_ids: dict[str, str] = {}  # service → its first container's id
    parts_of: dict[str, _ServiceParts] = {}

    def joined(kind: str, target: str) -> str:
        """`network_mode: service:target` (kind "net"), `pid:`/`ipc: service:target`:
        that namespace of target's first container (made before ours: a dependency).
        Its id is in our hash, so a recreated target recreates us."""
        key = "network_mode" if kind == "net" else kind
        if target not in first_ids:
            raise SpecError(f"{key} service:{target}: {target!r} runs no container "
                            f"to share the {kind} namespace of",
                            hint=f"give {target!r} at least one replica")
        if inputs.slots is not None:
            raise SpecError(f"{key} service:{target} is not supported in cluster "
                            "mode yet", hint="use the service's networks instead"
                            if kind == "net" else f"leave {key} out")
        ns: str = getattr(parts_of[target].spec.namespaces, kind)
        if ns != "new":
            return ns  # the host's, or (a chain of sidecars) the one target joined
        if kind != "net":
            return f"container:{first_ids[target]}"
        if not parts_of[target].attachments:
            raise SpecError(f"network_mode service:{target}: {target!r} has network_mode "
                            "none, a namespace of its own no other container can join",
                            hint=f"give {target!r} a network, or share another's")
        return inputs.netns_path(first_ids[target])

    order = [name for wave in waves for name in wave]  # dependencies first
    for name in [*order, *sorted(set(stack.services) - set(order))]:
        svc = stack.services[name]
        image = images[name]
        parts = _service_parts(stack, name, svc, image, inputs, joined)
        health = healthcheck_of(svc, image)
        deps = tuple(DependsOn(target, d.condition, d.required, d.restart)
                     for target, d in sorted(svc.depends_on.items()))
        for mode in (svc.network_mode, svc.pid, svc.ipc):
            if mode and mode.startswith("service:"):
                # In its namespace: when the target's container is made again, ours
                # must join the new one, as `depends_on: {x: {restart: true}}` asks.
                shared = mode.removeprefix("service:")
                deps = (*(d for d in deps if d.service != shared),
                        DependsOn(shared, "service_started", True, True))
        for dep in deps:
            target = stack.services.get(dep.service)
            if (dep.condition == "service_healthy" and target is not None
                    and healthcheck_of(target, images[dep.service]) is None):
                raise SpecError(
                    f"service {name!r} waits for {dep.service!r} to be healthy, but "
                    f"{dep.service!r} has no healthcheck",
                    location=stack.location_of(("services", name, "depends_on", dep.service)),
                    hint=f"add a healthcheck to {dep.service!r} or use service_started")
        scale = inputs.scale.get(name, svc.replicas)
        if svc.container_name is not None and scale > 1:
            raise SpecError(
                f"service {name!r}: container_name {svc.container_name!r} names one "
                f"container, it cannot be scaled to {scale}",
                location=stack.location_of(("services", name, "container_name")),
                hint="remove container_name to run more than one")
        unhealthy = _x_stackd(svc).get("restart_on_unhealthy", True)
        services[name] = DesiredService(name, scale, deps, health, restart_of(svc),
                                        restart_on_unhealthy=unhealthy is not False,
                                        needs=tuple(sorted(graph.successors(name))),
                                        update=update_policy(svc, inputs.rolling_back))
        parts_of[name] = parts
        if scale > 0:
            first_ids[name] = container_id(stack.name, name, 1, parts.config_hash.digest,
                                           svc.container_name)
        indices: Sequence[int] = range(1, scale + 1)
        if inputs.slots is not None and svc.deploy is not None and svc.deploy.mode == "global":
            # One per node: the cluster counts them, and this node runs what it holds.
            indices = sorted(inputs.slots.get(name, ()))
        for index in indices:
            if inputs.slots is not None and index not in inputs.slots.get(name, ()):
                continue
            container, used = _slot(stack, name, index, parts, inputs)
            containers.append(container)
            volumes.update(used)
    services = dict(sorted(services.items()))
    containers.sort(key=lambda c: (c.service, c.index))
    _check_published(stack, containers)
    external_vols = {stack.volume_host_name(k) for k, v in stack.volumes.items() if v.external}
    networks: dict[str, NetworkSpec] = {}
    used_nets = {a.network_key for c in containers for a in c.attachments}
    for key, net in sorted(stack.networks.items()):
        host = stack.network_host_name(key)
        if host not in used_nets:
            continue
        pool = net.ipam.config[0] if net.ipam is not None and net.ipam.config else None
        networks[host] = NetworkSpec(
            key=host, project=stack.name, name=key,
            subnet=pool.subnet if pool else None, gateway=pool.gateway if pool else None,
            ip_range=pool.ip_range if pool else None,
            reserved=tuple(sorted(pool.aux_addresses.values())) if pool else (),
            internal=net.internal, external=net.external, isolated=not net.icc,
            driver=network_driver(net.driver, cluster=inputs.slots is not None),
            labels=dict(net.labels), driver_opts=dict(net.driver_opts))
    state = DesiredState(
        project=stack.name,
        services=services,
        containers=tuple(containers),
        networks=networks,
        volumes=tuple(sorted(volumes - external_vols)),
        waves=waves,
    )
    return state
