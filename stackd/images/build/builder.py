"""Run a Dockerfile: stages of instructions over `StageState`s, each step cached by key.

Metadata instructions (ENV, LABEL, CMD, …) only change the config. COPY/ADD stage
their files in a private dir that becomes a layer; RUN executes in a real container
through `stackd.runtime.Runtime` with the stage's snapshot dirs as its lower layers,
and the container's upper dir (overlayfs form) becomes the new layer. A step whose key
(previous state + instruction + inputs) is in the build cache is not run again.
"""

from __future__ import annotations

import bz2
import lzma
import os
import re
import shutil
import stat
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

import trio

from stackd.errors import StackdError
from stackd.images.build.cache import BuildCache
from stackd.images.build.cachemounts import CacheDirs
from stackd.images.build.context import BuildContext
from stackd.images.build.dockerfile import (
    HEREDOC,
    Instruction,
    expand,
    parse_dockerfile,
    split_words,
)
from stackd.images.build.fetch import fetch, is_url
from stackd.images.build.imageconfig import DEFAULT_SHELL, configure, env_dict, env_pairs
from stackd.images.build.imageconfig import parse_duration as parse_duration
from stackd.images.build.mergedview import listdir, lookup, read_text
from stackd.images.build.network import MODES, Joined, RunNetwork, StepOptions
from stackd.images.build.runmounts import (
    BindMount,
    CacheMount,
    RunMount,
    SecretMount,
    TmpfsMount,
    parse_mounts,
    traces,
)
from stackd.images.build.secrets import sources
from stackd.images.build.state import StageState
from stackd.images.build.users import resolve_chown
from stackd.images.errors import BuildError, DockerfileError
from stackd.images.models import Image, ImageConfig, in_image
from stackd.images.oci import now
from stackd.images.platform import Platform, host_platform, parse_platform
from stackd.images.progress import Progress, ProgressEvent
from stackd.images.store import ImageStore
from stackd.images.unpack import unpack_layer
from stackd.trees import remove_tree

if TYPE_CHECKING:
    from stackd.runtime.containerspec import Mount

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Mount points the runtime makes in every container; not part of what a RUN produced.
RUNTIME_MOUNT_POINTS = ("proc", "sys", "dev")
# Where `RUN <<EOF` puts a script that starts with #! (BuildKit's /dev/pipes, which
# here would be under the runtime's own /dev); left out of the layer as mounts are.
HEREDOC_SCRIPTS = "/run/stackd-heredoc"
@dataclass(frozen=True, slots=True)
class _BindSource:
    """A RUN's bind mount with where its files are: a path of the context, or a path
    in a stage's (or image's) layers."""

    mount: BindMount
    key: str  # what the step's cache key takes of it
    context_rel: str | None
    layers: tuple[str, ...]
    path: str


def platform_args(p: Platform) -> dict[str, str]:
    """TARGETPLATFORM, TARGETOS, … as BuildKit sets them; target and build platform are
    this host's (stackd does not cross-build)."""
    out: dict[str, str] = {}
    for prefix in ("TARGET", "BUILD"):
        out |= {f"{prefix}PLATFORM": str(p), f"{prefix}OS": p.os,
                f"{prefix}ARCH": p.architecture, f"{prefix}VARIANT": p.variant or ""}
    return out


def _mount_key(m: RunMount) -> str:
    if isinstance(m, SecretMount):
        return f"secret {m.id} {m.target}"
    if isinstance(m, CacheMount):
        return f"cache {m.id} {m.target} {m.readonly} {m.mode:o} {m.uid}:{m.gid}"
    if isinstance(m, TmpfsMount):
        return f"tmpfs {m.target} {m.size}"
    return f"bind {m.target}"  # its content: _BindSource.key


class Builder:
    def __init__(self, store: ImageStore, context_dir: Path, dockerfile: str,
                 build_args: dict[str, str], progress: Progress, *, no_cache: bool = False,
                 labels: dict[str, str] | None = None, pull: bool = False,
                 dockerfile_text: str | None = None,
                 secrets: dict[str, Path] | None = None,
                 network: RunNetwork | None = None, network_mode: str = "default",
                 step_options: StepOptions | None = None,
                 contexts: dict[str, str] | None = None) -> None:
        if network_mode not in MODES:
            raise BuildError(f"build network {network_mode!r} is not one of "
                             + ", ".join(MODES), hint="use default or none")
        self.store = store
        self.network = network  # None: RUN steps have loopback only
        self.network_mode = network_mode  # a RUN's own --network wins
        self.step_options = step_options or StepOptions()
        self.secrets = secrets or {}  # id → host file, for RUN --mount=type=secret
        self.context = BuildContext(context_dir)
        path = Path(dockerfile)
        self.dockerfile = path if path.is_absolute() else self.context.root / path
        self.dockerfile_text = dockerfile_text
        self.file = "dockerfile_inline" if dockerfile_text is not None else str(self.dockerfile)
        self.build_args = build_args
        self.progress = progress
        self.no_cache = no_cache
        self.labels = labels or {}
        self.pull_policy: Literal["always", "missing"] = "always" if pull else "missing"
        self.cache = BuildCache(store)
        self.cache_dirs = CacheDirs(store.root)
        self.stages: dict[str, StageState] = {}
        self.stage_list: list[StageState] = []
        # Named contexts (compose's additional_contexts, buildx's --build-context):
        # name → a directory, or docker-image://REF. A directory is read once per build.
        self.contexts = dict(contexts or {})
        self._context_states: dict[str, StageState] = {}

    # -- driving ------------------------------------------------------------------------
    async def build(self, target: str | None, tags: list[str]) -> Image:
        if not self.context.root.is_dir():
            raise BuildError(f"build context {self.context.root} is not a directory",
                             hint="give the directory holding the Dockerfile and its files")
        try:
            text = (self.dockerfile_text if self.dockerfile_text is not None
                    else self.dockerfile.read_text())
        except FileNotFoundError:
            raise DockerfileError(f"no Dockerfile at {self.dockerfile}",
                                  hint="pass -f PATH, or create it") from None
        except (OSError, UnicodeDecodeError) as e:  # a directory, a name too long, binary
            why = e.strerror if isinstance(e, OSError) else "it is not text"
            raise DockerfileError(f"cannot read the Dockerfile {self.dockerfile}: {why}",
                                  hint="pass -f with the path of a Dockerfile") from None
        instructions = parse_dockerfile(text, self.file)
        # BuildKit's automatic platform args: set before the first FROM, and in a stage
        # once it declares them (`ARG TARGETARCH`).
        global_args: dict[str, str] = platform_args(host_platform())
        stages: list[tuple[Instruction, list[Instruction]]] = []
        for ins in instructions:
            if ins.cmd == "FROM":
                stages.append((ins, []))
            elif not stages:
                if ins.cmd != "ARG":
                    raise ins.error(self.file, "only ARG may come before the first FROM",
                                    hint="start the Dockerfile with FROM")
                for name, value in self._arg_pairs(ins, global_args):
                    default = value if value is not None else global_args.get(name, "")
                    global_args[name] = self.build_args.get(name, default)
            else:
                stages[-1][1].append(ins)
        names = [self._stage_name(f, global_args) for f, _ in stages]
        last = len(stages) - 1
        if target is not None:
            if target not in names:
                raise BuildError(f"no stage named {target!r} in {self.file}",
                                 hint="stages: " + ", ".join(n for n in names if n) or "none")
            last = names.index(target)
        fd = await self.store.hold_for_writing()
        try:
            state = StageState(key="")
            for index, (from_ins, body) in enumerate(stages[: last + 1]):
                state = await self._stage(index, len(stages[: last + 1]), from_ins, body,
                                          global_args)
                self.stage_list.append(state)
                if names[index]:
                    self.stages[names[index]] = state
            return await trio.to_thread.run_sync(self._commit, state, tags)
        finally:
            os.close(fd)

    def _commit(self, state: StageState, tags: list[str]) -> Image:
        created = state.history[-1]["created"] if state.history else now()
        config = state.config
        if self.labels:
            config = config.model_copy(update={"labels": {**config.labels, **self.labels}})
        return self.store.commit(config, list(state.layers), list(state.history),
                                 names=tags, created=created)

    def _stage_name(self, ins: Instruction, global_args: dict[str, str]) -> str:
        words = split_words(ins.args)
        if len(words) == 3 and words[1].lower() == "as":
            return words[2].lower()
        if len(words) not in (1, 3):
            raise ins.error(self.file, "expected FROM IMAGE [AS NAME]")
        return ""

    def _arg_pairs(self, ins: Instruction, env: dict[str, str]) -> list[tuple[str, str | None]]:
        out: list[tuple[str, str | None]] = []
        for word in split_words(ins.args):
            name, sep, value = word.partition("=")
            out.append((name, expand(value, env) if sep else None))
        if not out:
            raise ins.error(self.file, "ARG needs a name")
        return out

    async def _stage(self, index: int, total: int, from_ins: Instruction,
                     body: list[Instruction], global_args: dict[str, str]) -> StageState:
        steps = len(body) + 1
        self._step(index, total, 1, steps, from_ins)
        base = expand(split_words(from_ins.args)[0], global_args)
        state = await self._from(from_ins, base, global_args)
        args: dict[str, str] = {}
        cmd_set = False
        for n, ins in enumerate(body, start=2):
            self._step(index, total, n, steps, ins)
            env = {**args, **env_dict(state.config.env)}
            try:
                if ins.cmd == "ARG":
                    for name, value in self._arg_pairs(ins, env):
                        default = value if value is not None else global_args.get(name)
                        args[name] = self.build_args.get(name, default or "")
                    state = StageState(state.next_key("ARG", sorted(args.items())), state.layers,
                                       state.config, state.history)
                    continue
                if ins.cmd == "CMD":
                    cmd_set = True
                if ins.cmd == "ENTRYPOINT" and not cmd_set:
                    state = StageState(state.key, state.layers,
                                       state.config.model_copy(update={"cmd": None}),
                                       state.history)
                state = await self._instruction(ins, state, env, args)
            except (ValueError, KeyError) as exc:
                raise ins.error(self.file, str(exc).strip("'\"")) from None
        return state

    def _step(self, stage: int, stages: int, n: int, steps: int, ins: Instruction) -> None:
        label = f"[{stage + 1}/{stages}] " if stages > 1 else ""
        self.progress(ProgressEvent(f"{label}step {n}/{steps}: {ins.original[:100]}", "step"))

    async def _from(self, ins: Instruction, base: str, global_args: dict[str, str]
                    ) -> StageState:
        if "platform" in ins.flags:
            wanted = expand(ins.flags["platform"], global_args)
            host = host_platform()
            if not re.fullmatch(r"[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?", wanted.lower()) or \
                    not host.runs(parse_platform(wanted)):
                raise ins.error(self.file, f"--platform={wanted}: this host runs {host} "
                                "images only", hint="stackd builds for the host's platform; "
                                "drop --platform or build on such a host")
        if base == "scratch":
            return StageState(key=StageState(key="").next_key("scratch"))
        if base.lower() in self.stages:
            return self.stages[base.lower()]
        if base in self.contexts:
            return await self._named_context(base)
        image = await self.store.ensure(base, self.pull_policy, self.progress)
        return self._state_of_image(image.digest)

    async def _named_context(self, name: str) -> StageState:
        """A named context as a stage: the image it names, or the directory's tree as one
        layer (root-owned, its own .dockerignore applied, as a context is copied)."""
        value = self.contexts[name]
        if value.startswith("docker-image://"):
            ref = value.removeprefix("docker-image://")
            image = await self.store.ensure(ref, self.pull_policy, self.progress)
            return self._state_of_image(image.digest)
        if name not in self._context_states:
            ctx = BuildContext(Path(value))
            if not ctx.root.is_dir():
                raise BuildError(f"build context {name!r} ({value}) is not a directory",
                                 hint="name an existing directory in additional_contexts")

            def stage() -> Any:
                tmp = self.store.snapshots.temp_dir()
                try:
                    walk = _TreeCopy()
                    for rel in ctx.walk("")[1:]:
                        _copy_entry(ctx.host(rel), tmp / rel, None, None, stage_root=tmp,
                                    walk=walk)
                    return self.store.add_layer_from_dir(tmp)
                finally:
                    remove_tree(tmp, ignore_errors=True)

            layer = await trio.to_thread.run_sync(stage)
            self._context_states[name] = StageState(
                key=StageState(key="").next_key("context", name, layer[1]), layers=(layer,))
        return self._context_states[name]

    def _state_of_image(self, manifest_digest: str) -> StageState:
        import json

        from stackd.images.oci import parse_manifest

        manifest = parse_manifest(self.store.blobs.read_bytes(manifest_digest))
        raw = json.loads(self.store.blobs.read_bytes(manifest.config.digest))
        diff_ids = raw["rootfs"]["diff_ids"]
        self.store.image(manifest_digest)  # unpacks any snapshot not yet unpacked
        return StageState(key=StageState(key="").next_key("image", manifest_digest),
                          layers=tuple(zip(manifest.layers, diff_ids, strict=True)),
                          config=ImageConfig.from_oci(raw.get("config")),
                          history=tuple(raw.get("history") or ()))

    # -- instructions -------------------------------------------------------------------
    async def _instruction(self, ins: Instruction, state: StageState, env: dict[str, str],
                           args: dict[str, str]) -> StageState:
        cfg = state.config
        created_by = ins.original.replace("\n", " ")
        if ins.cmd in ("RUN", "COPY", "ADD", "WORKDIR"):
            return await self._layer_step(ins, state, env, args)
        cfg = configure(cfg, ins, env, self.file)
        key = state.next_key(ins.cmd, ins.original, cfg.model_dump(mode="json"))
        return self._config_step(key, state, cfg, created_by)

    def _config_step(self, key: str, state: StageState, cfg: ImageConfig, created_by: str
                     ) -> StageState:
        """A step that only changes the config; cached too, so its history time is stable."""
        if not self.no_cache:
            hit = self.cache.get(key)
            if hit is not None:
                return StageState.from_json(hit)
        new = state.with_config(key, cfg, created_by, now())
        self.cache.put(key, new.to_json())
        return new

    async def _layer_step(self, ins: Instruction, state: StageState, env: dict[str, str],
                          args: dict[str, str]) -> StageState:
        cfg = state.config
        if ins.cmd == "WORKDIR":
            cfg = configure(cfg, ins, env, self.file)
            workdir = cfg.working_dir or "/"
            key = state.next_key("WORKDIR", workdir)
            if lookup(state.layer_dirs(self.store), workdir) is not None:
                return self._config_step(key, state, cfg, ins.original)
            return await self._cached(
                key, state, ins,
                lambda: trio.to_thread.run_sync(self._mkdir_layer, state, workdir), cfg)
        if ins.cmd == "RUN":
            network = ins.flags.get("network", self.network_mode)
            if network not in MODES:
                raise ins.error(self.file, f"--network={network} is not supported",
                                hint="RUN steps take --network=default (the build's "
                                     "network) or none; host is not offered")
            argv, script = self._run_argv(ins, cfg)
            run_env = self._run_env(cfg, args)
            mounts = parse_mounts(ins, self.file, cfg.working_dir or "/", env)
            binds = [await self._bind_source(ins, m) for m in mounts
                     if isinstance(m, BindMount)]
            # Where each mount goes is part of the step, and what a bind mount shows;
            # what a secret or a cache holds is not (Docker's rules).
            key = state.next_key("RUN", list(argv), run_env, cfg.user, cfg.working_dir,
                                 *(_mount_key(m) for m in mounts), *(b.key for b in binds),
                                 *([f"script {script}"] if script is not None else []))
            return await self._cached(
                key, state, ins,
                lambda: self._run(ins, state, list(argv), run_env, mounts, binds, script,
                                  network == "default"), cfg)
        return await self._copy_step(ins, state, env)

    async def _cached(self, key: str, state: StageState, ins: Instruction, make: Any,
                      cfg: ImageConfig) -> StageState:
        if not self.no_cache:
            hit = self.cache.get(key)
            if hit is not None:
                self.progress(ProgressEvent("  cached", "step"))
                return StageState.from_json(hit)
        layer = await make()
        new = StageState(key, state.layers, cfg, state.history).with_layer(
            key, layer, ins.original, now())
        self.cache.put(key, new.to_json())
        return new

    async def _staged(self, key: str, state: StageState, ins: Instruction,
                      stage: Callable[[Path], None]) -> StageState:
        """A COPY/ADD step: `stage` fills a private staging dir (in a worker thread),
        which becomes the layer; cached by `key`."""
        def make_sync() -> Any:
            tmp = self.store.snapshots.temp_dir()
            try:
                stage(tmp)
                return self.store.add_layer_from_dir(tmp)
            finally:
                remove_tree(tmp, ignore_errors=True)

        async def make() -> Any:
            return await trio.to_thread.run_sync(make_sync)

        return await self._cached(key, state, ins, make, state.config)

    def _mkdir_layer(self, state: StageState, path: str) -> Any:
        tmp = self.store.snapshots.temp_dir()
        try:
            self._make_parents(state, tmp, path, include_self=True)
            return self.store.add_layer_from_dir(tmp)
        finally:
            remove_tree(tmp, ignore_errors=True)

    def _make_parents(self, state: StageState, tmp: Path, path: str, include_self: bool) -> Path:
        """Create `path`'s parent dirs in the staging dir with the image's own metadata."""
        parts = [p for p in in_image(path).split("/") if p]
        if not include_self:
            parts = parts[:-1]
        cur = tmp
        layers = state.layer_dirs(self.store)
        for i, part in enumerate(parts):
            cur = cur / part
            if cur.is_symlink():
                raise BuildError(f"{path}: '{'/'.join(parts[: i + 1])}' was just copied as a "
                                 "symlink; nothing may be placed through it",
                                 hint="copy into the real directory instead")
            if cur.is_dir():
                continue
            existing = lookup(layers, "/".join(parts[: i + 1]))
            cur.mkdir()
            if existing is not None and os.path.isdir(existing) and not os.path.islink(existing):
                st = os.stat(existing)
                os.chown(cur, st.st_uid, st.st_gid)
                os.chmod(cur, stat.S_IMODE(st.st_mode))
            else:
                os.chmod(cur, 0o755)
        return cur

    def _run_env(self, cfg: ImageConfig, args: dict[str, str]) -> list[str]:
        env = dict(env_pairs(cfg.env))
        for k, v in args.items():
            env.setdefault(k, v)  # ENV wins over ARG, as in Docker
        env.setdefault("PATH", DEFAULT_PATH.split("=", 1)[1])
        return [f"{k}={v}" for k, v in env.items()]

    # -- RUN ------------------------------------------------------------------------------
    def _run_argv(self, ins: Instruction, cfg: ImageConfig) -> tuple[list[str], str | None]:
        """The RUN's command, and the script a `RUN <<EOF` that starts with #! runs.
        BuildKit's rules: a heredoc alone is the script (run by the shell, or, with #!,
        as a file of its own); with a command, the heredocs go to the shell after it."""
        shell = list(cfg.shell or DEFAULT_SHELL)
        if ins.json_args is not None:
            return list(ins.json_args), None
        if not ins.heredocs:
            return [*shell, ins.args], None
        if len(ins.heredocs) == 1 and HEREDOC.fullmatch(ins.args.strip()):
            doc = ins.heredocs[0]
            if doc.content.startswith("#!"):
                return [f"{HEREDOC_SCRIPTS}/{doc.name}"], doc.content
            return [*shell, doc.content], None
        return [*shell, ins.args + "".join(f"\n{d.content}{d.name}" for d in ins.heredocs)], None

    async def _bind_source(self, ins: Instruction, m: BindMount) -> _BindSource:
        """Where a bind mount's files come from, and what of them the cache key takes."""
        if m.from_ is None:
            hits = self.context.match(m.source or ".")
            if hits is None:
                raise ins.error(self.file, f"--mount source {m.source!r} is outside the "
                                "build context")
            if len(hits) != 1:
                raise BuildError(f"{self.file}:{ins.line}: --mount source {m.source!r} "
                                 + ("was not found in the build context (or is in "
                                    ".dockerignore)" if not hits else
                                    f"names {len(hits)} paths; a bind mount takes one"),
                                 hint=f"context is {self.context.root}")
            if self.context.host(hits[0]).is_symlink():
                raise ins.error(self.file, f"--mount source {m.source!r} is a symlink",
                                hint="name what it points to instead")
            return _BindSource(m, f"bind {m.target} {m.readwrite} context "
                               f"{hits[0]} {self.context.digest(hits)}", hits[0], (), "")
        src = await self._from_source(ins, m.from_)
        layers = src.layer_dirs(self.store)
        path = in_image(m.source)
        host = lookup(layers, path)
        if host is None:
            raise BuildError(f"{self.file}:{ins.line}: --mount from={m.from_}: {path} does "
                             "not exist in that stage or image",
                             hint="check the path in the source stage")
        if os.path.islink(host):
            raise ins.error(self.file, f"--mount from={m.from_}: {path} is a symlink",
                            hint="name what it points to instead")
        return _BindSource(m, f"bind {m.target} {m.readwrite} from {src.key} {path}",
                           None, layers, path)

    def _stage_bind(self, b: _BindSource) -> tuple[Path, Path]:
        """A copy of a bind mount's files to mount (a step may not see or, with rw,
        change the context or a stage itself); → (the copy, its staging dir)."""
        tmp = self.store.snapshots.temp_dir()
        out = tmp / "src"
        try:
            if b.context_rel is not None:
                top = self.context.host(b.context_rel)
                _copy_entry(top, out, None, None, stage_root=tmp)
                if top.is_dir():
                    walk = _TreeCopy()
                    for sub in self.context.walk(b.context_rel)[1:]:
                        rel = os.path.relpath(sub, b.context_rel or ".")
                        _copy_entry(self.context.host(sub), out / rel, None, None,
                                    stage_root=tmp, walk=walk)
            else:
                host = lookup(b.layers, b.path)
                assert host is not None
                _copy_entry(Path(host), out, None, None, keep_owner=True, stage_root=tmp)
                if os.path.isdir(host):
                    self._copy_view_tree(b.layers, b.path, out, None, None, tmp)
        except BaseException:
            remove_tree(tmp, ignore_errors=True)
            raise
        return out, tmp

    async def _run(self, ins: Instruction, state: StageState, argv: list[str], env: list[str],
                   mounts: list[RunMount], binds: list[_BindSource], script: str | None,
                   networked: bool) -> Any:
        if not state.layers:
            raise ins.error(self.file, "RUN needs a base image with a shell (this stage is "
                                       "FROM scratch with no files yet)")
        from stackd.runtime.containerspec import Mount

        async with AsyncExitStack() as stack:
            given: list[Mount] = []
            for secret, path in sources([m for m in mounts if isinstance(m, SecretMount)],
                                        self.secrets, ins, self.file):
                given.append(Mount(type="bind", source=str(path), target=secret.target,
                                   readonly=True))
            for m in mounts:
                if isinstance(m, CacheMount):
                    host = await stack.enter_async_context(self.cache_dirs.use(m))
                    given.append(Mount(type="bind", source=str(host), target=m.target,
                                       readonly=m.readonly))
                elif isinstance(m, TmpfsMount):
                    given.append(Mount(type="tmpfs", target=m.target, size=m.size))
            for b in binds:
                copy, tmp = await trio.to_thread.run_sync(self._stage_bind, b)
                stack.callback(remove_tree, tmp, True)
                given.append(Mount(type="bind", source=str(copy), target=b.mount.target,
                                   readonly=not b.mount.readwrite))
            if script is not None:
                tmp = self.store.snapshots.temp_dir()
                stack.callback(remove_tree, tmp, True)
                (tmp / "script").write_text(script)
                os.chmod(tmp / "script", 0o755)
                given.append(Mount(type="bind", source=str(tmp / "script"), target=argv[0],
                                   readonly=True))
            cid = f"build-{uuid.uuid4().hex[:12]}"
            joined: Joined | None = None
            if networked and self.network is not None:
                joined = await stack.enter_async_context(self.network.attached(cid))
            return await self._run_container(ins, state, cid, argv, env, tuple(given),
                                             joined)

    def _step_files(self, ins: Instruction, joined: Joined | None) -> dict[str, str]:
        """/etc/resolv.conf and /etc/hosts of a step: the network's, and build's
        extra_hosts after (host-gateway: the host's address on the step's network)."""
        files = dict(joined.files) if joined is not None else {}
        if self.step_options.extra_hosts:
            hosts = files.get("/etc/hosts", "127.0.0.1\tlocalhost\n")
            for entry in self.step_options.extra_hosts:
                host, _sep, ip = entry.partition("=")
                if ip == "host-gateway":
                    if joined is None or joined.gateway is None:
                        raise ins.error(self.file, f"extra_hosts {host}=host-gateway: this "
                                        "step has no network, so no host gateway",
                                        hint="give an address, or let the step have the "
                                             "build network")
                    ip = joined.gateway
                hosts += f"{ip}\t{host}\n"
            files["/etc/hosts"] = hosts
        return files

    async def _run_container(self, ins: Instruction, state: StageState, cid: str,
                             argv: list[str], env: list[str], mounts: tuple[Mount, ...],
                             joined: Joined | None) -> Any:
        from stackd.runtime import Runtime
        from stackd.runtime.containerspec import (
            ContainerSpec,
            Namespaces,
            ProcessSpec,
            Resources,
            Rlimit,
        )
        from stackd.runtime.layout import ContainerPaths

        rt = Runtime(self.store.roots)
        layers = state.layer_dirs(self.store)
        opts = self.step_options
        spec = ContainerSpec(
            id=cid, name=cid, labels={"io.stackd.build": "true"}, layers=layers,
            process=ProcessSpec(args=tuple(argv), env=tuple(env),
                                cwd=state.config.working_dir or "/", user=state.config.user,
                                rlimits=tuple(Rlimit(type=n, soft=s, hard=h)
                                              for n, s, h in opts.ulimits)),
            hostname="stackd-build",
            # On the build's network (a bridge, as Docker's default), or loopback only.
            namespaces=Namespaces(net=joined.netns if joined is not None else "new"),
            files=self._step_files(ins, joined),
            mounts=mounts,
            **({"resources": Resources(shm_size=opts.shm_size)} if opts.shm_size else {}),
        )
        created = False
        try:
            try:
                await rt.create(spec)
                created = True
                await rt.start(cid)
                status = await rt.wait(cid)
            except StackdError as exc:
                raise BuildError(f"{self.file}:{ins.line}: RUN could not start a container: "
                                 f"{exc.message}", hint=exc.hint) from exc
            lines = []
            async for rec in rt.logs(cid):
                lines.append(rec.line)
                self.progress(ProgressEvent(f"  {rec.line}", "log"))
            code = status.code
            if code != 0:
                tail = "\n".join(lines[-10:])
                raise BuildError(
                    f"{self.file}:{ins.line}: RUN {ins.args[:80]!r} exited with {code}"
                    + (f"; last output:\n{tail}" if tail else ""),
                    hint="fix the command; earlier steps stay cached")
            upper = ContainerPaths(self.store.roots, cid).upper
            exclude = frozenset(p for p in RUNTIME_MOUNT_POINTS
                                if lookup(layers, p) is None and _empty_dir(upper / p))
            exclude |= traces(layers, upper, [m.target for m in mounts])
            return await trio.to_thread.run_sync(self.store.add_layer_from_dir, upper, exclude)
        finally:
            if created:
                await rt.delete(cid, force=True)

    # -- COPY / ADD -----------------------------------------------------------------------
    def _owner_and_mode(self, ins: Instruction, state: StageState, env: dict[str, str]
                        ) -> tuple[tuple[int, int] | None, int | None]:
        """COPY/ADD's --chown (names looked up in the image) and --chmod."""
        chown = expand(ins.flags["chown"], env) if "chown" in ins.flags else None
        chmod = int(ins.flags["chmod"], 8) if "chmod" in ins.flags else None
        owner = None
        if chown:
            layers = state.layer_dirs(self.store)
            owner = resolve_chown(chown, read_text(layers, "/etc/passwd"),
                                  read_text(layers, "/etc/group"))
        return owner, chmod

    async def _copy_heredocs(self, ins: Instruction, state: StageState, env: dict[str, str]
                             ) -> StageState:
        """`COPY <<EOF /dest` (or several into a directory): each heredoc a file named
        after its word, its $VARs expanded unless the word was quoted."""
        raw = split_words(ins.args)
        docs = {d.marker: d for d in ins.heredocs}
        if "from" in ins.flags or len(raw) < 2 or any(w not in docs for w in raw[:-1]):
            raise ins.error(self.file, "a COPY of heredocs takes only heredocs as its sources",
                            hint="copy files from the context in a COPY of their own")
        files = [(d.name, expand(d.content, env, quotes=False) if d.expand else d.content)
                 for d in (docs[w] for w in raw[:-1])]
        dest = expand(raw[-1], env)
        dest_abs = in_image(dest, state.config.working_dir or "/")
        dest_is_dir = dest.endswith("/") or len(files) > 1 or dest in (".", "./")
        owner, chmod = self._owner_and_mode(ins, state, env)
        key = state.next_key(ins.cmd, ins.original, dest_abs, dest_is_dir, owner, chmod,
                             ["heredocs", files])

        def stage(tmp: Path) -> None:
            given = self.store.snapshots.temp_dir()
            try:
                for name, content in files:
                    (given / name).write_text(content)
                    os.chmod(given / name, 0o644)
                    target = self._target(state, tmp, dest_abs, dest_is_dir, False, name)
                    _copy_entry(given / name, target, owner, chmod, stage_root=tmp)
            finally:
                remove_tree(given, ignore_errors=True)

        return await self._staged(key, state, ins, stage)

    async def _copy_step(self, ins: Instruction, state: StageState, env: dict[str, str]
                         ) -> StageState:
        if ins.heredocs:
            return await self._copy_heredocs(ins, state, env)
        words = list(ins.json_args) if ins.json_args is not None else [
            expand(w, env) for w in split_words(ins.args)]
        if len(words) < 2:
            raise ins.error(self.file, f"{ins.cmd} needs at least one source and a destination")
        *sources, dest = words
        workdir = state.config.working_dir or "/"
        dest_abs = in_image(dest, workdir)
        dest_is_dir = dest.endswith("/") or len(sources) > 1 or dest in (".", "./")
        owner, chmod = self._owner_and_mode(ins, state, env)
        src_from = ins.flags.get("from")
        if src_from is not None:
            src_state = await self._from_source(ins, expand(src_from, env))
            src_layers = src_state.layer_dirs(self.store)
            resolved = []
            for s in sources:
                host = lookup(src_layers, s)
                if host is None:
                    raise BuildError(f"{self.file}:{ins.line}: COPY --from={src_from}: {s!r} "
                                     "does not exist in that stage/image",
                                     hint="check the path in the source stage")
                resolved.append(s)
            inputs: Any = [src_state.key, resolved]
        else:
            if any(s.startswith("git@") or (is_url(s) and s.endswith(".git"))
                   for s in sources):
                raise ins.error(self.file, f"{ins.cmd} of a git repository is not supported "
                                "by stackd", hint="clone it into the build context and COPY it")
            if any(is_url(s) for s in sources):
                if ins.cmd != "ADD" or not all(is_url(s) for s in sources):
                    raise ins.error(self.file, f"{ins.cmd} takes URLs only in an ADD of "
                                    "URLs alone", hint="ADD the URLs in a step of their own")
                return await self._add_urls(ins, state, sources, dest_abs, dest_is_dir,
                                            owner, chmod)
            rels: list[str] = []
            for s in sources:
                hits = self.context.match(s)
                if hits is None:
                    raise ins.error(self.file, f"source {s!r} is outside the build context")
                if not hits:
                    raise BuildError(f"{self.file}:{ins.line}: {ins.cmd} source {s!r} was not "
                                     "found in the build context (or is in .dockerignore)",
                                     hint=f"context is {self.context.root}")
                rels.extend(hits)
            if len(rels) > 1:
                dest_is_dir = True
            inputs = [self.context.digest(rels)]
            resolved = rels
        key = state.next_key(ins.cmd, ins.original, dest_abs, dest_is_dir, owner, chmod, inputs)

        def stage(tmp: Path) -> None:
            if src_from is not None:
                self._stage_from_view(state, src_state.layer_dirs(self.store), resolved,
                                      tmp, dest_abs, dest_is_dir, owner, chmod)
            else:
                self._stage_from_context(ins, state, resolved, tmp, dest_abs, dest_is_dir,
                                         owner, chmod)

        return await self._staged(key, state, ins, stage)

    async def _add_urls(self, ins: Instruction, state: StageState, urls: list[str],
                        dest_abs: str, dest_is_dir: bool, owner: tuple[int, int] | None,
                        chmod: int | None) -> StageState:
        """`ADD URL… DEST`: fetched on each build (the content is the cache key, so an
        unchanged file reuses the layer), never unpacked, 0600 unless --chmod."""
        where = f"{self.file}:{ins.line}"
        checksum = ins.flags.get("checksum")
        if checksum is not None and (len(urls) != 1 or not checksum.startswith("sha256:")):
            raise ins.error(self.file, f"--checksum={checksum}: give sha256:<hex> for one URL")
        given = self.store.snapshots.temp_dir()
        try:
            got = [await fetch(u, given, where) for u in urls]
            if checksum is not None and got[0].digest != checksum.lower():
                raise BuildError(f"{where}: ADD {urls[0]}: its content is {got[0].digest}, "
                                 f"not {checksum}", hint="check the URL, or the checksum")
            existing = lookup(state.layer_dirs(self.store), dest_abs)
            into_dir = dest_is_dir or (existing is not None and os.path.isdir(existing)
                                       and not os.path.islink(existing))
            if into_dir and any(not f.name for f in got):
                raise ins.error(self.file, f"ADD {urls[0]}: the URL names no file to call it "
                                "in a directory", hint="give the destination's file name")
            key = state.next_key(ins.cmd, ins.original, dest_abs, dest_is_dir, owner, chmod,
                                 ["urls", [(f.url, f.digest) for f in got]])

            def stage(tmp: Path) -> None:
                for f in got:
                    target = self._target(state, tmp, dest_abs, dest_is_dir, False, f.name)
                    _copy_entry(f.path, target, owner, chmod, stage_root=tmp)

            return await self._staged(key, state, ins, stage)
        finally:
            remove_tree(given, ignore_errors=True)

    async def _from_source(self, ins: Instruction, name: str) -> StageState:
        if name.lower() in self.stages:
            return self.stages[name.lower()]
        if name.isdigit() and int(name) < len(self.stage_list):
            return self.stage_list[int(name)]
        if name in self.contexts:
            return await self._named_context(name)
        image = await self.store.ensure(name, "missing", self.progress)
        return self._state_of_image(image.digest)

    def _target(self, state: StageState, tmp: Path, dest_abs: str, dest_is_dir: bool,
                src_is_dir: bool, name: str) -> Path:
        layers = state.layer_dirs(self.store)
        existing = lookup(layers, dest_abs)
        into_dir = dest_is_dir or src_is_dir or (existing is not None
                                                 and os.path.isdir(existing)
                                                 and not os.path.islink(existing))
        if into_dir:
            base = self._make_parents(state, tmp, dest_abs, include_self=True)
            return base if src_is_dir else base / name
        self._make_parents(state, tmp, dest_abs, include_self=False)
        return tmp / in_image(dest_abs).lstrip("/")

    def _stage_from_context(self, ins: Instruction, state: StageState, rels: list[str],
                            tmp: Path, dest_abs: str, dest_is_dir: bool,
                            owner: tuple[int, int] | None, chmod: int | None) -> None:
        for rel in rels:
            src = self.context.host(rel)
            is_dir = src.is_dir() and not src.is_symlink()
            if ins.cmd == "ADD" and not is_dir and not src.is_symlink():  # never read via links
                archive = _open_archive(src)
                if archive is not None:
                    target = self._make_parents(state, tmp, dest_abs, include_self=True)
                    with archive:
                        unpack_layer(archive, target)
                    continue
            target = self._target(state, tmp, dest_abs, dest_is_dir, is_dir, src.name)
            if is_dir:
                walk = _TreeCopy()
                for sub in self.context.walk(rel)[1:]:
                    _copy_entry(self.context.host(sub), target / os.path.relpath(sub, rel or "."),
                                owner, chmod, stage_root=tmp, walk=walk)
                if owner is not None:
                    os.chown(target, *owner)
            else:
                _copy_entry(src, target, owner, chmod, stage_root=tmp)

    def _stage_from_view(self, state: StageState, src_layers: tuple[str, ...], paths: list[str],
                         tmp: Path, dest_abs: str, dest_is_dir: bool,
                         owner: tuple[int, int] | None, chmod: int | None) -> None:
        for path in paths:
            host = lookup(src_layers, path)
            assert host is not None
            is_dir = os.path.isdir(host) and not os.path.islink(host)
            target = self._target(state, tmp, dest_abs, dest_is_dir or len(paths) > 1, is_dir,
                                  os.path.basename(path.rstrip("/")))
            if is_dir:
                self._copy_view_tree(src_layers, path, target, owner, chmod, tmp)
            else:
                _copy_entry(Path(host), target, owner, chmod, keep_owner=True, stage_root=tmp)

    def _copy_view_tree(self, layers: tuple[str, ...], path: str, target: Path,
                        owner: tuple[int, int] | None, chmod: int | None, tmp: Path) -> None:
        def entries(path: str, target: Path) -> list[tuple[str, str, Path]]:
            """(path in the image, host path, destination) of what `path` holds, the
            first last."""
            return [(f"{path.rstrip('/')}/{name}", host, target / name)
                    for name, host in sorted(listdir(layers, path).items(), reverse=True)]

        # Depth first in name order, without a frame per level: an image's tree may
        # nest past the recursion limit.
        pending = entries(path, target)
        walk = _TreeCopy()
        while pending:
            inner, host, dest = pending.pop()
            _copy_entry(Path(host), dest, owner, chmod, keep_owner=True, stage_root=tmp,
                        walk=walk)
            if os.path.isdir(host) and not os.path.islink(host):
                pending += entries(inner, dest)


def _copy_entry(src: Path, dest: Path, owner: tuple[int, int] | None, chmod: int | None,
                keep_owner: bool = False, *, stage_root: Path, walk: _TreeCopy | None = None
                ) -> None:
    """One file, symlink or (empty) directory, with mode and mtime; root-owned by default.
    `walk`: the tree copy this entry is part of."""
    st = os.lstat(src)
    _ensure_parent(stage_root, dest, walk)
    if dest.is_symlink():
        dest.unlink()  # replaced, never followed (it could point at the host)
    if stat.S_ISDIR(st.st_mode):
        dest.mkdir(exist_ok=True)
        if walk is not None:
            walk.last = dest  # a directory just now: its entries follow
        os.chmod(dest, chmod if chmod is not None else stat.S_IMODE(st.st_mode))
    elif stat.S_ISLNK(st.st_mode):
        if os.path.lexists(dest):
            os.unlink(dest)
        os.symlink(os.readlink(src), dest)
    elif stat.S_ISREG(st.st_mode):
        if os.path.lexists(dest) and not os.path.isdir(dest):
            os.unlink(dest)
        shutil.copyfile(src, dest, follow_symlinks=False)
        os.chmod(dest, chmod if chmod is not None else stat.S_IMODE(st.st_mode))
    else:
        return  # devices, fifos and sockets are not copied from a context
    uid, gid = owner if owner is not None else ((st.st_uid, st.st_gid) if keep_owner else (0, 0))
    os.lchown(dest, uid, gid)
    if not stat.S_ISLNK(st.st_mode) and chmod is None:
        os.chmod(dest, stat.S_IMODE(st.st_mode))  # chown cleared setuid/setgid
    os.utime(dest, ns=(st.st_mtime_ns, st.st_mtime_ns), follow_symlinks=False)


@dataclass
class _TreeCopy:
    """One tree's copy into a staging dir, parents first: the directory it last made
    or checked. An entry's parent is most often that directory; without it each entry
    checked every level of its path again, by name — a tree a thousand deep took a
    minute. Sound for one walk only: within it nothing but `_copy_entry` writes, and it
    never removes a directory (unlink refuses one), so a directory stays one."""

    last: Path | None = None


def _ensure_parent(stage_root: Path, dest: Path, walk: _TreeCopy | None = None) -> None:
    """Create dest's parent dirs in the staging dir, refusing to pass through a symlink an
    earlier source of the same step staged (it could point anywhere on the host)."""
    if walk is not None and walk.last == dest.parent:
        return
    cur = stage_root
    for part in dest.parent.relative_to(stage_root).parts:
        cur = cur / part
        if cur.is_symlink():
            raise BuildError(
                f"copying to /{dest.relative_to(stage_root)} would go through the symlink "
                f"/{cur.relative_to(stage_root)} this step copied",
                hint="copy the symlink and what belongs behind it in separate steps")
        if not cur.exists():
            cur.mkdir()
    if walk is not None:
        walk.last = dest.parent


def _open_archive(path: Path) -> BinaryIO | None:
    """A tar stream if `path` is a (compressed) tar ADD should extract, else None."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith(b"BZh"):
        return bz2.open(path, "rb")  # type: ignore[return-value]
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.open(path, "rb")  # type: ignore[return-value]
    if head.startswith((b"\x1f\x8b", b"\x28\xb5\x2f\xfd")) or head[257:262] == b"ustar":
        return open(path, "rb")  # the caller's with-block closes it
    return None


def _empty_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and not any(path.iterdir())
