"""`stackd run`: one container from an image, like `docker run`, outside any stack.

`run_spec` is pure: the request and the image's config in, a ContainerSpec out, with
Docker's rules (entrypoint + cmd, image env then -e, -w over WorkingDir, -u over
User). `SingleRunner` carries it out through the reconciler's ports: network (the
root's `default` bridge, none, host or any existing network), create, start, and, unless
detached, the output until the process exits, then its exit code; --rm deletes it.
"""

from __future__ import annotations

import math
import secrets
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any, Literal

import trio
from pydantic import Field

from stackd import hostnames
from stackd.daemon.models import Request
from stackd.daemon.singlewatch import LABEL_RESTART, SingleSupervisor
from stackd.errors import NotFoundError, StackdError, UsageError
from stackd.reconciler.imagedefaults import merge_env, process_args
from stackd.runtime.containerspec import (
    ContainerSpec,
    Mount,
    Namespaces,
    ProcessSpec,
    Resources,
    Rlimit,
    Security,
)

LABEL_RUN = "io.stackd.run"
RUN_PROJECT = "_run"  # owner of the default network and of named volumes made by run
DEFAULT_NETWORK = "stackd_default"
# How long the default network outlives its last container. Making and removing it
# (a bridge and the nftables rules of a network) took ~250 ms of each `run --rm` on a
# loaded 2-core host; docker and podman keep theirs for good.
DEFAULT_NETWORK_LINGER = 30.0


class RunOptions(Request):
    """What `stackd run` takes for an image and for a service alike."""

    cmd: list[str] = Field(default_factory=list, max_length=4096)
    entrypoint: list[str] | None = Field(default=None, max_length=256)
    name: str | None = Field(default=None, pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
    env: list[str] = Field(default_factory=list, max_length=4096)
    publish: list[str] = Field(default_factory=list, max_length=256)
    workdir: str = Field(default="", max_length=4096)
    user: str = Field(default="", max_length=256)
    rm: bool = False
    detach: bool = False
    # -i / -t: the CLI attaches to the container through the runtime (`attach`);
    # console_*: its terminal's size, given to the pty before the process starts.
    interactive: bool = False
    tty: bool = False
    console_rows: int = Field(default=0, ge=0, le=10000)
    console_cols: int = Field(default=0, ge=0, le=10000)
    # Added to (dropped from) the image's or service's own, as Compose's run does.
    cap_add: list[str] = Field(default_factory=list, max_length=64)
    cap_drop: list[str] = Field(default_factory=list, max_length=64)

    def attach_fields(self, *, terminal: bool = False) -> dict[str, Any]:
        """The ProcessSpec fields -i/-t set (`terminal`: the service's own tty:)."""
        return {"terminal": self.tty or terminal, "stdin_open": self.interactive or self.tty,
                "console_rows": self.console_rows, "console_cols": self.console_cols}


def started(cid: str, name: str, process: Any) -> dict[str, Any]:
    """A run's {"started"} item: which container, and how the CLI attaches to it (the
    reading the daemon chose — service or image — decides, not the flags alone)."""
    return {"id": cid, "name": name, "stdin": bool(process.stdin_open),
            "tty": bool(process.terminal)}


class RunRequest(RunOptions):
    image: str = Field(min_length=1, max_length=512)
    volumes: list[str] = Field(default_factory=list, max_length=256)
    memory: str | None = Field(default=None, max_length=32)
    cpus: float | None = Field(default=None, gt=0, le=1024)
    pids_limit: int | None = Field(default=None, ge=1, le=4_194_304)  # PID_MAX_LIMIT
    read_only: bool = False
    # default/bridge (the root's run network), none, host, or any existing network by
    # its host name (a stack's `<project>_<name>`, a network's `name:`).
    network: str = Field(default="default", pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
    init: bool = False
    pull: Literal["always", "missing", "never"] = "missing"
    hostname: str | None = Field(default=None, pattern=r"^[a-zA-Z0-9][a-zA-Z0-9.-]{0,62}$")
    privileged: bool = False
    security_opt: list[str] = Field(default_factory=list, max_length=16)
    tmpfs: list[str] = Field(default_factory=list, max_length=64)
    ulimit: list[str] = Field(default_factory=list, max_length=32)
    stop_signal: str | None = Field(default=None, pattern=r"^[A-Z0-9+-]{1,16}$")
    stop_timeout: int | None = Field(default=None, ge=0, le=86400)
    labels: list[str] = Field(default_factory=list, max_length=256)
    add_host: list[str] = Field(default_factory=list, max_length=256)
    dns: list[str] = Field(default_factory=list, max_length=8)
    publish_all: bool = False  # -P: every port the image exposes, on a free host port
    # Supervised by the daemon (daemon/singlewatch.py) unless "no".
    restart: str = Field(default="no",
                         pattern=r"^(no|always|unless-stopped|on-failure(:[0-9]{1,6})?)$")


def container_name(request: RunRequest) -> str:
    return request.name or f"run-{secrets.token_hex(4)}"


def run_spec(request: RunRequest, image: Any, *, name: str, netns: str | None,
             mounts: list[Mount], files: dict[str, str]) -> ContainerSpec:
    cfg = image.config
    args = process_args(cfg.entrypoint, cfg.cmd, request.entrypoint, request.cmd or None)
    if not args:
        raise UsageError(f"image {request.image} has no command and none was given",
                         hint=f"stackd run {request.image} sh -c '…'")
    env = [f"{k}={v}" for k, v in merge_env(cfg.env, _key_values(request.env)).items()]
    memory = None
    if request.memory:
        from stackd.spec.units import parse_bytes

        try:
            memory = parse_bytes(request.memory)
        except ValueError:  # it ended the daemon's stream: "exit code is unknown"
            raise UsageError(f"-m {request.memory!r} is not a memory size",
                             hint="e.g. -m 512m, -m 1g or -m 100000 (bytes)") from None
    net = {"host": "host", "none": "new"}.get(request.network, netns or "new")
    hostname = request.hostname or (name.lower()[:63] if request.network != "host" else "")
    labels = dict(_pairs(request.labels, "--label"))
    if reserved := hostnames.reserved_labels(labels):
        raise UsageError(f"--label {reserved[0]}: the {hostnames.LABEL_PREFIX} prefix is "
                         "stackd's own", hint="name your labels otherwise")
    labels[LABEL_RUN] = "1"
    labels[hostnames.LABEL_IMAGE] = request.image
    if request.restart != "no":
        labels[LABEL_RESTART] = request.restart
    return ContainerSpec(
        id=name.lower(), name=name, labels=labels,
        layers=tuple(image.layer_dirs), readonly_rootfs=request.read_only,
        process=ProcessSpec(args=tuple(args), env=tuple(env),
                            cwd=request.workdir or cfg.working_dir or "/",
                            user=request.user or cfg.user, init=request.init,
                            rlimits=tuple(_ulimit(u) for u in request.ulimit),
                            **request.attach_fields()),
        hostname=hostname,
        mounts=tuple(mounts) + tuple(_tmpfs(t) for t in request.tmpfs), files=files,
        namespaces=Namespaces(net=net),
        resources=Resources(memory=memory,
                            cpu_quota=int(request.cpus * 100_000) if request.cpus else None,
                            pids_limit=request.pids_limit),
        security=_security(request),
        extra_hosts=tuple(_extra_host(h) for h in request.add_host),
        dns=tuple(_address(d, "--dns") for d in request.dns),
        stop_signal=request.stop_signal or cfg.stop_signal or "SIGTERM",
        **({"stop_grace": float(request.stop_timeout)}
           if request.stop_timeout is not None else {}),
    )


def _pairs(items: list[str], flag: str) -> list[tuple[str, str]]:
    out = []
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise UsageError(f"{flag} {item!r} is not KEY=value", hint=f"e.g. {flag} a=b")
        out.append((key, value))
    return out


def _extra_host(text: str) -> str:
    """`--add-host name:ip` (ip may be host-gateway), as docker run takes it."""
    host, sep, ip = text.replace("=", ":", 1).partition(":")
    if not sep or not host or not ip:
        raise UsageError(f"--add-host {text!r} is not NAME:IP",
                         hint="e.g. --add-host db:10.0.0.5 or --add-host h:host-gateway")
    if ip != "host-gateway":
        _address(ip.strip("[]"), "--add-host")
    return f"{host}={ip.strip('[]')}"


def _address(text: str, flag: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise UsageError(f"{flag}: {text!r} is not an IP address",
                         hint=f"e.g. {flag} 10.0.0.5") from None


def _ulimit(text: str) -> Rlimit:
    """`nofile=1024[:2048]`, as docker run --ulimit takes it."""
    name, _, limits = text.partition("=")
    soft, _, hard = limits.partition(":")
    try:
        return Rlimit(type=name, soft=int(soft), hard=int(hard or soft))
    except ValueError:
        raise UsageError(f"--ulimit {text!r} is not NAME=SOFT[:HARD]",
                         hint="e.g. --ulimit nofile=1024:2048") from None


def _tmpfs(text: str) -> Mount:
    """`/path[:size=64m,mode=1777]`, as docker run --tmpfs takes it."""
    from stackd.reconciler.translate import tmpfs_mount
    from stackd.spec.tmpfs import OPTIONS_HINT, parse_tmpfs

    try:
        return tmpfs_mount(parse_tmpfs(text))
    except ValueError as e:
        raise UsageError(f"--{e}", hint=OPTIONS_HINT) from None


def _security(request: RunRequest) -> Security:
    """--privileged, --cap-add/--cap-drop and the --security-opt values stackd has."""
    seccomp, nnp = "default", None
    for opt in request.security_opt:
        key, _, value = opt.replace(":", "=", 1).partition("=")
        if key == "seccomp" and value in ("unconfined", "default"):
            seccomp = value
        elif key == "no-new-privileges" and value in ("", "true", "false"):
            nnp = value != "false"
        else:
            raise UsageError(f"--security-opt {opt!r} is not supported",
                             hint="stackd takes no-new-privileges[:true|false] and "
                             "seccomp=unconfined")
    return Security(privileged=request.privileged, cap_add=tuple(request.cap_add),
                    cap_drop=tuple(request.cap_drop), no_new_privileges=nnp,
                    seccomp=seccomp)


def _key_values(items: list[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for kv in items:
        key, sep, value = kv.partition("=")
        if not sep:
            raise UsageError(f"-e {kv!r} is not KEY=value", hint="e.g. -e LOG_LEVEL=debug")
        out[key] = value
    return out


def parse_publish(items: list[str]) -> list[Any]:
    """`[[ip:]host:]container[/proto]` → PortBindings; no host port (`-p 80`,
    `-p 127.0.0.1::80`): a free one, chosen as it is published (docker run's)."""
    from stackd.netbridge import PortBinding, expand_ports

    out = []
    for item in items:
        spec, _, proto = item.partition("/")
        parts = spec.rsplit(":", 2)
        try:
            if len(parts) == 3:
                ip, host, ctr = parts
            elif len(parts) == 2:
                ip, (host, ctr) = "", parts
            else:
                ip, host, ctr = "", "", parts[0]
            if not host:
                out.append(PortBinding(host_port=0, container_port=int(ctr),
                                       protocol=proto or "tcp", host_ip=ip))
                continue
            out += expand_ports((int(host), int(host)), (int(ctr), int(ctr)), proto or "tcp",
                                ip)
        except ValueError:
            raise UsageError(f"-p {item!r} is not [[IP:]HOST:]CONTAINER[/PROTO]",
                             hint="e.g. -p 8080:80, or -p 80 for a free host port") from None
    return out


def exposed_bindings(exposed: Sequence[str], image: str, given: list[Any]) -> list[Any]:
    """`run -P`: a free host port for each port the image exposes (`80/tcp`,
    `8000-8010/udp`) that no -p publishes already, as docker run's. The image's words
    are checked here: a hostile one's are not ports."""
    from stackd.netbridge import PortBinding

    taken = {(b.container_port, b.protocol) for b in given}
    out = []
    for text in exposed:
        spec, _, proto = text.partition("/")
        first, _, last = spec.partition("-")
        try:
            low, high = int(first), int(last or first)
        except ValueError:
            low = high = 0
        proto = proto or "tcp"
        if not (1 <= low <= high <= 65535) or proto not in ("tcp", "udp"):
            raise UsageError(f"image {image} exposes {text!r}, which -P cannot publish: "
                             "not a tcp or udp port",
                             hint="publish the ports you want with -p instead")
        out += [PortBinding(host_port=0, container_port=port, protocol=proto)
                for port in range(low, high + 1) if (port, proto) not in taken]
    return out


class DefaultNetwork:
    """The root's `default` network for `stackd run`: made on first use, kept while a
    container is on it or joining it, and removed once it has been unused for
    `linger` seconds (`keep`, a daemon task) and when the daemon stops."""

    def __init__(self, ports: Any, *, linger: float = DEFAULT_NETWORK_LINGER) -> None:
        self.ports = ports
        self.linger = linger
        # Held to make the network and to remove it, so neither runs into the other.
        self.lock = trio.Lock()
        self.joining = 0  # runs between ensuring the network and being attached to it
        self.joined_at = -math.inf  # the last attach: a run between two looks counts too

    async def join(self, cid: str, bindings: list[Any]) -> str:
        from stackd.netbridge import Attachment, NetworkSpec

        net = self.ports.network
        self.joining += 1
        try:
            async with self.lock:
                await net.ensure_network(NetworkSpec(key=DEFAULT_NETWORK, project=RUN_PROJECT,
                                                     name="default"))
            path: str = await net.connect(cid, [Attachment(DEFAULT_NETWORK)], bindings)
            return path
        finally:
            self.joining -= 1
            self.joined_at = trio.current_time()

    def unused(self) -> bool | None:
        """None: there is no default network; else whether nothing is on it."""
        nets = self.ports.network.nets
        if DEFAULT_NETWORK not in {n.key for n in nets.list()}:
            return None
        return self.joining == 0 and not nets.alloc.addresses(network_key=DEFAULT_NETWORK)

    async def keep(self, *, every: float = 1.0) -> None:
        """Remove the network once unused for `linger` seconds; and, shielded, at the
        end (the daemon stopping), if unused."""
        idle_since: float | None = None
        try:
            while True:
                await trio.sleep(every)
                unused = self.unused()
                if not unused:
                    idle_since = None
                elif idle_since is None:
                    idle_since = trio.current_time()
                elif trio.current_time() - max(idle_since, self.joined_at) >= self.linger:
                    await self.release()
                    idle_since = None
        finally:
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + 15.0
                await self.release()

    async def release(self) -> None:
        from stackd.errors import ConflictError

        async with self.lock:
            if not self.unused():
                return
            try:
                await self.ports.network.nets.remove_network(DEFAULT_NETWORK)
            except ConflictError:
                pass  # a container joined meanwhile


class SingleRunner:
    def __init__(self, ports: Any, images: Any, volumes: Any,
                 default_network: DefaultNetwork,
                 singles: SingleSupervisor | None = None) -> None:
        self.ports = ports
        self.images = images
        self.volumes = volumes
        self.default_network = default_network
        self.singles = singles

    async def run(self, request: RunRequest) -> AsyncIterator[dict[str, Any]]:
        from stackd.netbridge import Attachment

        image = await self.images.ensure(request.image, request.pull)
        name = container_name(request)
        cid = name.lower()
        bindings = parse_publish(request.publish)
        if request.publish_all:
            bindings += exposed_bindings(image.config.exposed_ports, request.image, bindings)
        if request.restart != "no" and request.rm:
            raise UsageError(f"--restart {request.restart} and --rm conflict: a removed "
                             "container cannot be restarted", hint="leave one of them out")
        if (bindings or request.publish_all) and request.network in ("none", "host"):
            raise UsageError(f"-p and -P do not apply with --network {request.network}")
        # Every mistake in the request is found before anything is made on the host.
        run_spec(request, image, name=name, netns=None, mounts=[], files={})
        for v in request.volumes:
            _check_volume(v)
        mounts = [await self._mount(v) for v in request.volumes]
        netns = None
        files: dict[str, str] = {}
        net = self.ports.network
        if request.network in ("default", "bridge"):
            netns = await self.default_network.join(cid, bindings)
        elif request.network not in ("none", "host"):
            if request.network not in await _network_names(net):
                raise NotFoundError(f"network {request.network!r} does not exist",
                                    hint="see `stackd network ls` for the names")
            netns = await net.connect(cid, [Attachment(request.network)], bindings)
        try:
            spec = run_spec(request, image, name=name, netns=netns, mounts=mounts, files=files)
            await self.ports.runtime.create(spec)
            if netns is not None:
                await net.resolvable(cid)
            await self.ports.runtime.start(cid)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._remove(cid)
            raise
        if request.restart != "no" and self.singles is not None:
            self.singles.watch(cid, name, request.restart)
        yield {"started": started(cid, name, spec.process)}
        if request.detach:
            return
        removed = False
        try:
            async for item in follow_output(self.ports, cid):
                if "exit" in item and request.rm:
                    # Removed before the exit is told, as docker run --rm: the client
                    # returns at the exit, and a `ps` right after must not list it.
                    with trio.CancelScope(shield=True):
                        await self._remove(cid)
                    removed = True
                yield item
        finally:
            if request.rm and not removed:
                with trio.CancelScope(shield=True):
                    await self._remove(cid)

    async def _remove(self, cid: str) -> None:
        from stackd.reconciler import lifecycle

        # The default network stays a while for the next run (DefaultNetwork.keep).
        await lifecycle.tear_down(self.ports, cid)

    async def _mount(self, text: str) -> Mount:
        parts = _check_volume(text)
        source, target = parts[0], parts[1]
        ro = len(parts) == 3 and parts[2] == "ro"
        if source.startswith("/"):
            return Mount(type="bind", source=source, target=target, readonly=ro)
        path = await self.volumes.ensure_volume(RUN_PROJECT, source)
        return Mount(type="volume", source=path, target=target, readonly=ro)


def _check_volume(text: str) -> list[str]:
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[1].startswith("/") or not parts[0] or (
            len(parts) == 3 and parts[2] not in ("ro", "rw")):
        raise UsageError(f"-v {text!r} is not SOURCE:/TARGET[:ro]",
                         hint="e.g. -v /srv/data:/data:ro or -v myvol:/data")
    return parts


async def follow_output(ports: Any, cid: str) -> AsyncIterator[dict[str, Any]]:
    """A started container's output lines as they come, then its exit: what `stackd run`
    streams, for an image run and a service's one-off alike."""
    seen: Counter[tuple[Any, str, str]] = Counter()
    async with _live_output(ports, cid) as records:
        async for rec in records:
            if isinstance(rec, StackdError):
                raise rec
            seen[(rec.time, rec.stream, rec.line)] += 1
            yield {"stream": rec.stream, "line": rec.line}
    status = await ports.runtime.wait(cid)
    # Following can miss what is written as it switches from reading the file to
    # watching it; once the process has exited the file is complete, so send
    # whatever was missed (late rather than never).
    async for rec in ports.runtime.logs(cid, follow=False):
        key = (rec.time, rec.stream, rec.line)
        if seen[key] > 0:
            seen[key] -= 1
        else:
            yield {"stream": rec.stream, "line": rec.line}
    yield {"exit": {"code": status.code, "signal": status.signal,
                    "oom_killed": status.oom_killed}}


@trio.as_safe_channel
async def _live_output(ports: Any, cid: str) -> AsyncGenerator[Any, None]:
    """The followed log's records until the process exits. Following ends as the
    monitor answers `wait`, not at the follower's next look at the state (up to
    0.1 s later: most of a `run --rm IMG true`); follow_output reads what is left.

    Nothing here may cancel a scope this generator yields from: while it is
    suspended at a yield, its task awaits the hand-over to the consumer outside the
    generator, and a cancellation landing there escapes the scope it was meant for
    (trio: "Nursery stack corrupted"; the stream then ended with neither exit nor
    error). So the exit cancels only the follower task's own scope, the follower
    closes the channel this generator reads, and a failure is the last item, never
    raised (`tests/sim/test_run_stream_errors.py`)."""
    failed: list[StackdError] = []
    send, records = trio.open_memory_channel[Any](0)
    following, waiting = trio.CancelScope(), trio.CancelScope()

    async def end_at_exit() -> None:
        with waiting:
            try:
                await ports.runtime.wait(cid)
            except StackdError as exc:
                failed.append(exc)
            following.cancel()

    async def follow() -> None:
        async with send:
            with following:
                try:
                    async for rec in ports.runtime.logs(cid, follow=True):
                        await send.send(rec)
                except StackdError as exc:
                    failed.append(exc)
            waiting.cancel()  # the log ended on its own: the exit is follow_output's

    async with trio.open_nursery() as nursery:
        nursery.start_soon(end_at_exit)
        nursery.start_soon(follow)
        async with records:
            async for rec in records:
                yield rec
    if failed:
        yield failed[0]


async def _network_names(net: Any) -> set[str]:
    return {n.key for n in net.nets.list()}
