"""Stack + resolved images → DesiredState. Pure: every input is an argument.

Per replica slot: a ContainerSpec with the image's defaults merged as Docker merges
them (entrypoint/cmd, env, working dir, user, stop signal, healthcheck, VOLUMEs),
configs and secrets placed read-only at `/<name>` and `/run/secrets/<name>`, named
volumes as directories under the state root, the networks to join and ports to
publish; and the config hash over exactly the fields `hash.HASHED_FIELDS` names.
File contents (config/secret `file:`) come through `read_file`, environment-sourced
ones from `environ`, so the function stays testable without a disk.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

from stackd import hostnames
from stackd.errors import SpecError
from stackd.netbridge.model import Attachment, NetworkSpec, PortBinding, check_interface_names
from stackd.reconciler.desired import (
    CONDITIONS,
    DependsOn,
    DesiredContainer,
    DesiredService,
    DesiredState,
    FileToWrite,
    slot_container,
)
from stackd.reconciler.hash import config_hash
from stackd.reconciler.health import HealthCheck, from_image, probe_args
from stackd.reconciler.ports import ImageView
from stackd.reconciler.published import published_ports
from stackd.reconciler.restart import RestartPolicy, from_deploy, parse_restart
from stackd.runtime.containerspec import (
    ContainerSpec,
    Device,
    Mount,
    Namespaces,
    ProcessSpec,
    Resources,
    Rlimit,
    Security,
)
from stackd.scheduler import build_graph, start_waves
from stackd.scheduler.from_stack import from_stack
from stackd.spec.model import FileReference, Service, Stack

DEFAULT_FILE_MODE = 0o444  # Compose's default for configs and secrets


@dataclass(frozen=True, slots=True)
class BuildInputs:
    """What besides the stack and its images the desired state depends on."""

    volume_path: Callable[[str], str]  # volume host name → host directory
    file_path: Callable[[str], str]  # content digest → host path for a FileToWrite
    read_file: Callable[[str], bytes]  # config/secret `file:` → its bytes
    environ: Mapping[str, str] = field(default_factory=dict)  # for `environment:` sources
    scale: Mapping[str, int] = field(default_factory=dict)  # --scale svc=n


def image_ref(stack: Stack, name: str, svc: Service) -> str:
    """The image a service runs; Compose names a built one `<project>-<service>`."""
    if svc.image:
        return svc.image
    if svc.build is not None:
        return f"{stack.name}-{name}"
    raise SpecError(f"service {name!r} has neither image nor build",
                    location=stack.location_of(("services", name)),
                    hint="add `image: <ref>` (or a `build:` section)")


def network_host_name(stack: Stack, key: str) -> str:
    net = stack.networks.get(key)
    if net is not None and net.name:
        return net.name
    return f"{stack.name}_{key}"


def volume_host_name(stack: Stack, key: str) -> str:
    vol = stack.volumes.get(key)
    if vol is not None and vol.name:
        return vol.name
    return f"{stack.name}_{key}"


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
    return HealthCheck(
        args=args,
        interval=_seconds(hc.interval, 30.0),
        timeout=_seconds(hc.timeout, 30.0),
        retries=hc.retries,
        start_period=_seconds(hc.start_period, 0.0),
        start_interval=_seconds(hc.start_interval, 5.0),
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


def _file_content(stack: Stack, kind: str, ref: FileReference, inputs: BuildInputs,
                  where: tuple[str | int, ...]) -> bytes:
    objs = stack.configs if kind == "configs" else stack.secrets
    obj = objs.get(ref.source)
    loc = stack.location_of(where)
    if obj is None:
        raise SpecError(f"{kind[:-1]} {ref.source!r} is not declared", location=loc,
                        hint=f"add it under the top-level `{kind}:`")
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
    inputs: dict[str, object]
    attachments: tuple[Attachment, ...]
    ports: tuple[PortBinding, ...]
    volumes: tuple[str, ...]
    files_to_write: tuple[FileToWrite, ...]
    anonymous: tuple[str, ...]  # image VOLUME paths not otherwise mounted


def _service_parts(stack: Stack, name: str, svc: Service, image: ImageView,
                   inputs: BuildInputs) -> _ServiceParts:
    cfg = image.config
    here: tuple[str | int, ...] = ("services", name)

    # Docker: an entrypoint set by the service discards the image's CMD.
    entrypoint = tuple(svc.entrypoint) if svc.entrypoint is not None else \
        tuple(cfg.entrypoint or ())
    if svc.command is not None:
        command = tuple(svc.command)
    elif svc.entrypoint is not None:
        command = ()
    else:
        command = tuple(cfg.cmd or ())
    args = entrypoint + command
    if not args:
        raise SpecError(f"service {name!r} has no command: its image sets neither "
                        "ENTRYPOINT nor CMD", location=stack.location_of(here),
                        hint="add `command:` to the service")

    env: dict[str, str] = {}
    for kv in cfg.env:
        key, _, value = kv.partition("=")
        env[key] = value
    for key, val in svc.environment.items():
        if val is None:
            env.pop(key, None)  # a bare name left unset by the shell: Compose drops it
        else:
            env[key] = val
    working_dir = svc.working_dir or cfg.working_dir or "/"
    user = svc.user or cfg.user or ""

    mounts: list[Mount] = []
    volumes: list[str] = []
    for i, v in enumerate(svc.volumes):
        if v.type == "bind":
            mounts.append(Mount(type="bind", source=v.source or "", target=v.target,
                                readonly=v.read_only))
        elif v.type == "tmpfs":
            mounts.append(Mount(type="tmpfs", target=v.target,
                                size=v.tmpfs.size if v.tmpfs else None,
                                mode=v.tmpfs.mode if v.tmpfs else None))
        elif v.source is None:
            mounts.append(Mount(type="volume", source="", target=v.target,
                                readonly=v.read_only))  # anonymous; named per slot below
        else:
            if v.source not in stack.volumes:
                raise SpecError(f"service {name!r} mounts volume {v.source!r}, which is not "
                                "declared", location=stack.location_of((*here, "volumes", i)),
                                hint="add it under the top-level `volumes:`")
            host = volume_host_name(stack, v.source)
            volumes.append(host)
            nocopy = v.volume.nocopy if v.volume is not None else False
            mounts.append(Mount(type="volume", source=inputs.volume_path(host), target=v.target,
                                readonly=v.read_only, seed=not nocopy))
    for t in svc.tmpfs:
        mounts.append(Mount(type="tmpfs", target=t.split(":", 1)[0]))
    covered = {m.target for m in mounts}
    anonymous = tuple(p for p in sorted(cfg.volumes) if p not in covered)

    files: dict[str, str] = {}
    to_write: list[FileToWrite] = []
    file_inputs: dict[str, object] = {}
    for kind, default_dir in (("configs", "/"), ("secrets", "/run/secrets/")):
        refs: Sequence[FileReference] = svc.configs if kind == "configs" else svc.secrets
        for i, ref in enumerate(refs):
            content = _file_content(stack, kind, ref, inputs, (*here, kind, i))
            target = ref.target or f"{default_dir}{ref.source}"
            if not target.startswith("/"):
                target = f"{default_dir}{target}"
            mode = ref.mode if ref.mode is not None else DEFAULT_FILE_MODE
            uid, gid = int(ref.uid or 0), int(ref.gid or 0)
            file_inputs[target] = {"sha256": _sha(content), "uid": uid, "gid": gid, "mode": mode}
            if (uid, gid, mode) == (0, 0, DEFAULT_FILE_MODE):
                try:
                    files[target] = content.decode()
                    continue
                except UnicodeDecodeError:
                    pass  # binary content: only a file on disk can carry it
            digest = _sha(content + f"{uid}:{gid}:{mode:o}".encode())
            path = inputs.file_path(digest)
            to_write.append(FileToWrite(path, content, uid, gid, mode))
            mounts.append(Mount(type="bind", source=path, target=target, readonly=True))

    net_ns = "new"
    attachments: list[Attachment] = []
    mode_ = svc.network_mode
    if mode_ == "host":
        net_ns = "host"
    elif mode_ == "none":
        pass
    elif mode_ is not None:
        raise SpecError(f"service {name!r}: network_mode {mode_!r} is not supported yet",
                        location=stack.location_of((*here, "network_mode")),
                        hint="use networks:, or network_mode host or none")
    else:
        order = sorted(svc.networks.items(),
                       key=lambda kv: (-(kv[1].priority or 0), kv[0]))
        for i, (key, sn) in enumerate(order):
            # A service-level mac_address is the first (default-route) network's.
            mac = sn.mac_address or (svc.mac_address if i == 0 else None)
            attachments.append(Attachment(network_key=network_host_name(stack, key),
                                          aliases=(name, *sn.aliases),
                                          ipv4_address=sn.ipv4_address, mac_address=mac,
                                          interface_name=sn.interface_name))
        check_interface_names(name, attachments)
    # Replica 1's ports stand for the service's in the hash (the others follow from them).
    ports = list(published_ports(stack, name, 1))

    limits = svc.deploy.resources.limits if svc.deploy and svc.deploy.resources else None
    memory = svc.mem_limit or (limits.memory if limits else None)
    cpus = svc.cpus or (limits.cpus if limits else None)
    pids = svc.pids_limit or (limits.pids if limits else None)
    resources = Resources(
        memory=memory, memory_swap=svc.memswap_limit,
        cpu_quota=int(cpus * 100_000) if cpus else None, cpu_shares=svc.cpu_shares,
        pids_limit=pids if pids and pids > 0 else None,
        **({"shm_size": svc.shm_size} if svc.shm_size else {}),
    )
    seccomp, nnp = "default", None
    for opt in svc.security_opt:
        key, _, val = opt.replace(":", "=", 1).partition("=")
        if key == "seccomp":
            seccomp = val
        elif key == "no-new-privileges":
            nnp = val in ("", "true")
    security = Security(privileged=svc.privileged, cap_add=svc.cap_add, cap_drop=svc.cap_drop,
                        no_new_privileges=nnp, seccomp=seccomp, sysctls=dict(svc.sysctls))
    rlimits = tuple(Rlimit(type=k, soft=u.soft, hard=u.hard)
                    for k, u in sorted(svc.ulimits.items()))
    process = ProcessSpec(args=args, env=tuple(f"{k}={v}" for k, v in env.items()),
                          cwd=working_dir, user=user, additional_groups=svc.group_add,
                          terminal=svc.tty, rlimits=rlimits, init=bool(svc.init))
    stop_signal = svc.stop_signal or cfg.stop_signal or "SIGTERM"
    stop_grace = _seconds(svc.stop_grace_period, 10.0)
    spec = ContainerSpec(
        id="pending", name="pending", labels=dict(svc.labels),
        layers=tuple(image.layer_dirs), readonly_rootfs=svc.read_only, process=process,
        hostname=svc.hostname or "", domainname=svc.domainname or "",
        mounts=tuple(mounts), files=files,
        namespaces=Namespaces(net=net_ns, cgroup="host" if svc.cgroup == "host" else "new"),
        devices=tuple(Device(source=d.source, target=d.target, permissions=d.permissions)
                      for d in svc.devices),
        extra_hosts=svc.extra_hosts, dns=svc.dns, dns_search=svc.dns_search,
        dns_options=svc.dns_opt,
        resources=resources, security=security, stop_signal=stop_signal,
        stop_grace=stop_grace,
    )
    hc = healthcheck_of(svc, image)
    hash_inputs: dict[str, object] = {
        "image": {"ref": image_ref(stack, name, svc), "id": image.id, "digest": image.digest},
        "entrypoint": list(entrypoint),
        "command": list(command),
        "environment": env,
        "working_dir": working_dir,
        "user": user,
        # Device nodes count as mounts; only when used, so the hashes of containers
        # without devices stay as they were.
        "mounts": [m.model_dump(mode="json") for m in mounts] + (
            [{"devices": [d.model_dump(mode="json") for d in svc.devices]}]
            if svc.devices else []),
        "files": file_inputs,
        # interface_name only when set: older hashes stay valid.
        "networks": [{k: v for k, v in asdict(a).items()
                      if k != "interface_name" or v is not None}
                     for a in attachments] + [net_ns] + _resolution(svc),
        "ports": [asdict(p) for p in ports],
        "resources": resources.model_dump(mode="json"),
        "security": [security.model_dump(mode="json"), svc.read_only] + (
            ["cgroup:host"] if svc.cgroup == "host" else []),
        "healthcheck": asdict(hc) if hc is not None else None,
        "process": {"init": bool(svc.init), "tty": svc.tty, "groups": list(svc.group_add),
                    "rlimits": [r.model_dump() for r in rlimits],
                    "hostname": svc.hostname, "domainname": svc.domainname,
                    "stop_signal": stop_signal, "stop_grace": stop_grace},
        "labels": dict(svc.labels),
    }
    return _ServiceParts(spec, hash_inputs, tuple(attachments), tuple(ports),
                         tuple(sorted(set(volumes))), tuple(to_write), anonymous)


def _resolution(svc: Service) -> list[object]:
    """extra_hosts and dns* for the hash, only when used (older hashes stay valid)."""
    given = {"extra_hosts": list(svc.extra_hosts), "dns": list(svc.dns),
             "dns_search": list(svc.dns_search), "dns_opt": list(svc.dns_opt)}
    return [given] if any(given.values()) else []


def _slot(stack: Stack, name: str, index: int, parts: _ServiceParts,
          inputs: BuildInputs) -> tuple[DesiredContainer, list[str]]:
    """One replica; anonymous volumes (image VOLUMEs, `- /path`) are named per slot."""
    spec, volumes = parts.spec, list(parts.volumes)
    anon_mounts: list[Mount] = []
    for target in parts.anonymous:
        anon_mounts.append(Mount(type="volume", source="", target=target))
    mounts: list[Mount] = []
    for m in (*spec.mounts, *anon_mounts):
        if m.type == "volume" and not m.source:
            vol = f"{stack.name}_{name}-{index}_{_sha(m.target.encode())[:8]}"
            volumes.append(vol)
            m = m.model_copy(update={"source": inputs.volume_path(vol)})
        mounts.append(m)
    hostname = spec.hostname or hostnames.container_name(stack.name, name, index)
    spec = spec.model_copy(update={"mounts": tuple(mounts), "hostname": hostname})
    inputs_ = dict(parts.inputs)
    # The slot's own volume paths are in the spec but not in the hash: they differ by
    # index and would make every slot's hash different for no reason.
    container = slot_container(stack.name, name, index, spec, config_hash(inputs_),
                               attachments=parts.attachments,
                               ports=published_ports(stack, name, index),
                               volumes=tuple(sorted(set(volumes))),
                               host_files=parts.files_to_write)
    return container, volumes


def desired_state(stack: Stack, images: Mapping[str, ImageView], inputs: BuildInputs
                  ) -> DesiredState:
    """The desired state of `stack`; `images` maps service name → its resolved image."""
    graph = build_graph(from_stack(stack))
    waves = tuple(tuple(w) for w in start_waves(graph))
    services: dict[str, DesiredService] = {}
    containers: list[DesiredContainer] = []
    volumes: set[str] = set()
    for name in sorted(stack.services):
        svc = stack.services[name]
        image = images[name]
        parts = _service_parts(stack, name, svc, image, inputs)
        health = healthcheck_of(svc, image)
        deps = tuple(DependsOn(target, d.condition, d.required, d.restart)
                     for target, d in sorted(svc.depends_on.items()))
        for dep in deps:
            if dep.condition not in CONDITIONS:
                raise SpecError(f"service {name!r}: unknown depends_on condition "
                                f"{dep.condition!r}")
            target = stack.services.get(dep.service)
            if (dep.condition == "service_healthy" and target is not None
                    and healthcheck_of(target, images[dep.service]) is None):
                raise SpecError(
                    f"service {name!r} waits for {dep.service!r} to be healthy, but "
                    f"{dep.service!r} has no healthcheck",
                    location=stack.location_of(("services", name, "depends_on", dep.service)),
                    hint=f"add a healthcheck to {dep.service!r} or use service_started")
        scale = inputs.scale.get(name, svc.replicas)
        unhealthy = _x_stackd(svc).get("restart_on_unhealthy", True)
        services[name] = DesiredService(name, scale, deps, health, restart_of(svc),
                                        restart_on_unhealthy=unhealthy is not False)
        for index in range(1, scale + 1):
            container, used = _slot(stack, name, index, parts, inputs)
            containers.append(container)
            volumes.update(used)
    external_vols = {volume_host_name(stack, k) for k, v in stack.volumes.items() if v.external}
    networks: dict[str, NetworkSpec] = {}
    used_nets = {a.network_key for c in containers for a in c.attachments}
    for key, net in sorted(stack.networks.items()):
        host = network_host_name(stack, key)
        if host not in used_nets:
            continue
        pool = net.ipam.config[0] if net.ipam is not None and net.ipam.config else None
        networks[host] = NetworkSpec(
            key=host, project=stack.name, name=key,
            subnet=pool.subnet if pool else None, gateway=pool.gateway if pool else None,
            internal=net.internal, external=net.external, driver=net.driver or "bridge",
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
