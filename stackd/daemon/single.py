"""`stackd run`: one container from an image, like `docker run`, outside any stack.

`run_spec` is pure: the request and the image's config in, a ContainerSpec out, with
Docker's rules (entrypoint + cmd, image env then -e, -w over WorkingDir, -u over
User). `SingleRunner` carries it out through the reconciler's ports: network (the
root's `default` bridge unless --network none/host), create, start, and, unless
detached, the output until the process exits, then its exit code; --rm deletes it.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any, Literal

import trio
from pydantic import BaseModel, ConfigDict, Field

from stackd.errors import UsageError
from stackd.runtime.containerspec import (
    ContainerSpec,
    Mount,
    Namespaces,
    ProcessSpec,
    Resources,
    Security,
)

LABEL_RUN = "io.stackd.run"
RUN_PROJECT = "_run"  # owner of the default network and of named volumes made by run
DEFAULT_NETWORK = "stackd_default"


class RunOptions(BaseModel):
    """What `stackd run` takes for an image and for a service alike."""

    model_config = ConfigDict(extra="forbid")

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

    def attach_fields(self, *, terminal: bool = False) -> dict[str, Any]:
        """The ProcessSpec fields -i/-t set (`terminal`: the service's own tty:)."""
        return {"terminal": self.tty or terminal, "stdin_open": self.interactive or self.tty,
                "console_rows": self.console_rows, "console_cols": self.console_cols}


class RunRequest(RunOptions):
    image: str = Field(min_length=1, max_length=512)
    volumes: list[str] = Field(default_factory=list, max_length=256)
    memory: str | None = Field(default=None, max_length=32)
    cpus: float | None = Field(default=None, gt=0, le=1024)
    pids_limit: int | None = Field(default=None, ge=1)
    read_only: bool = False
    cap_add: list[str] = Field(default_factory=list, max_length=64)
    cap_drop: list[str] = Field(default_factory=list, max_length=64)
    network: Literal["default", "bridge", "none", "host"] = "default"
    init: bool = False
    pull: Literal["always", "missing", "never"] = "missing"


def container_name(request: RunRequest) -> str:
    return request.name or f"run-{secrets.token_hex(4)}"


def run_spec(request: RunRequest, image: Any, *, name: str, netns: str | None,
             mounts: list[Mount], files: dict[str, str]) -> ContainerSpec:
    cfg = image.config
    entrypoint = list(request.entrypoint) if request.entrypoint is not None else list(
        cfg.entrypoint or ())
    if request.cmd:
        cmd = list(request.cmd)
    elif request.entrypoint is not None:
        cmd = []  # Docker: --entrypoint resets the image's CMD
    else:
        cmd = list(cfg.cmd or ())
    args = entrypoint + cmd
    if not args:
        raise UsageError(f"image {request.image} has no command and none was given",
                         hint=f"stackd run {request.image} sh -c '…'")
    env = _merge_env(cfg.env, request.env)
    memory = None
    if request.memory:
        from stackd.spec.units import parse_bytes

        memory = parse_bytes(request.memory)
    net = {"host": "host", "none": "new"}.get(request.network, netns or "new")
    return ContainerSpec(
        id=name.lower(), name=name, labels={LABEL_RUN: "1"},
        layers=tuple(image.layer_dirs), readonly_rootfs=request.read_only,
        process=ProcessSpec(args=tuple(args), env=tuple(env),
                            cwd=request.workdir or cfg.working_dir or "/",
                            user=request.user or cfg.user, init=request.init,
                            **request.attach_fields()),
        hostname=name.lower()[:63] if request.network != "host" else "",
        mounts=tuple(mounts), files=files,
        namespaces=Namespaces(net=net),
        resources=Resources(memory=memory,
                            cpu_quota=int(request.cpus * 100_000) if request.cpus else None,
                            pids_limit=request.pids_limit),
        security=Security(cap_add=tuple(request.cap_add), cap_drop=tuple(request.cap_drop)),
        stop_signal=cfg.stop_signal or "SIGTERM",
    )


def _merge_env(image_env: tuple[str, ...] | list[str], extra: list[str]) -> list[str]:
    out: dict[str, str] = {}
    for kv in [*image_env, *extra]:
        key, sep, value = kv.partition("=")
        if not sep:
            raise UsageError(f"-e {kv!r} is not KEY=value", hint="e.g. -e LOG_LEVEL=debug")
        out[key] = value
    return [f"{k}={v}" for k, v in out.items()]


def parse_publish(items: list[str]) -> list[Any]:
    """`[ip:]host:container[/proto]` → PortBindings."""
    from stackd.netbridge import expand_ports

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
                raise ValueError
            out += expand_ports((int(host), int(host)), (int(ctr), int(ctr)), proto or "tcp",
                                ip)
        except ValueError:
            raise UsageError(f"-p {item!r} is not [IP:]HOST:CONTAINER[/PROTO]",
                             hint="e.g. -p 8080:80") from None
    return out


class SingleRunner:
    def __init__(self, ports: Any, images: Any, volumes: Any) -> None:
        self.ports = ports
        self.images = images
        self.volumes = volumes

    async def run(self, request: RunRequest) -> AsyncIterator[dict[str, Any]]:
        from stackd.netbridge import Attachment, NetworkSpec

        image = await self.images.ensure(request.image, request.pull)
        name = container_name(request)
        cid = name.lower()
        bindings = parse_publish(request.publish)
        if bindings and request.network in ("none", "host"):
            raise UsageError(f"-p does not apply with --network {request.network}")
        # Every mistake in the request is found before anything is made on the host.
        run_spec(request, image, name=name, netns=None, mounts=[], files={})
        for v in request.volumes:
            _check_volume(v)
        mounts = [await self._mount(v) for v in request.volumes]
        netns = None
        files: dict[str, str] = {}
        net = self.ports.network
        if request.network in ("default", "bridge"):
            await net.ensure_network(NetworkSpec(key=DEFAULT_NETWORK, project=RUN_PROJECT,
                                                 name="default"))
            netns = await net.connect(cid, [Attachment(DEFAULT_NETWORK)], bindings)
        try:
            spec = run_spec(request, image, name=name, netns=netns, mounts=mounts, files=files)
            await self.ports.runtime.create(spec)
            await self.ports.runtime.start(cid)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._remove(cid)
            raise
        yield {"started": {"id": cid, "name": name}}
        if request.detach:
            return
        try:
            async for item in follow_output(self.ports, cid):
                yield item
        finally:
            if request.rm:
                with trio.CancelScope(shield=True):
                    await self._remove(cid)

    async def _remove(self, cid: str) -> None:
        from stackd.reconciler import lifecycle

        await lifecycle.tear_down(self.ports, cid)
        await release_default_network(self.ports)

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
    async for rec in ports.runtime.logs(cid, follow=True):
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


async def release_default_network(ports: Any) -> None:
    """The default network lives while a `run` container uses it (no leftovers after)."""
    from stackd.errors import ConflictError

    nets = ports.network.nets
    if DEFAULT_NETWORK not in {n.key for n in nets.list()}:
        return
    if nets.alloc.addresses(network_key=DEFAULT_NETWORK):
        return
    try:
        await nets.remove_network(DEFAULT_NETWORK)
    except ConflictError:
        pass  # a container joined meanwhile
