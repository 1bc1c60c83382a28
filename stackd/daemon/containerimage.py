"""A container's files as an image (`stackd commit`) or as a tar (`stackd export`),
read from its layers on the host, never through the running container: the
container's writable layer (its upper dir, overlayfs form) over its image's layers,
merged as overlayfs merges them (images/build/mergedview.py). No path is followed
through a symlink; what the runtime made for its own mounts (/proc, /dev, /sys, a
volume's or a given file's mount point the image did not have) is left out, as
Docker's init layer is.

The upper dir is the container's to write: a running container could swap a file
for a link to the host's /etc/shadow between our look and our read. So a running
container is paused (its cgroup frozen) while its layer is read — always, for both
verbs — and a file is opened with O_NOFOLLOW and checked to be the regular file the
look found.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tarfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import trio

from stackd.errors import ConflictError, HostError, NotFoundError, UsageError
from stackd.roots import Roots

RUNTIME_MOUNT_POINTS = ("proc", "sys", "dev")


def _state(roots: Roots, container_id: str) -> Any:
    from stackd.runtime.runtime import Runtime

    return trio.run(Runtime(roots).inspect, container_id)


def _layers(roots: Roots, state: Any) -> tuple[str, tuple[str, ...]]:
    """(upper dir, the image's layer dirs top-most first)."""
    from stackd.runtime.layout import ContainerPaths

    return str(ContainerPaths(roots, state.id).upper), tuple(state.spec.layers)


def _left_out(upper: str, layers: tuple[str, ...], spec: Any) -> frozenset[str]:
    from stackd.images.build.mergedview import lookup
    from stackd.images.build.runmounts import traces

    out = {p for p in RUNTIME_MOUNT_POINTS if lookup(layers, p) is None
           and os.path.isdir(os.path.join(upper, p))
           and not os.listdir(os.path.join(upper, p))}
    targets = [m.target for m in spec.mounts] + list(spec.files)
    return frozenset(out) | traces(layers, Path(upper), targets)


@contextmanager
def _held_still(roots: Roots, state: Any) -> Iterator[None]:
    """A running container paused (frozen) for the block; one that does not run as is."""
    from stackd.runtime.cgroups import host_mounts, manager_for
    from stackd.runtime.runtime import Runtime

    if state.status != "running" or manager_for(roots.id, state.id, host_mounts()).frozen():
        yield  # not running, or paused already (and left so)
        return
    rt = Runtime(roots)
    trio.run(rt.pause, state.id, True)
    try:
        yield
    finally:
        try:
            trio.run(rt.pause, state.id, False)
        except ConflictError:
            pass  # thawed meanwhile (`unpause`), or ended: nothing left to thaw


def _open_regular(host: str, st: os.stat_result) -> IO[bytes]:
    """The regular file the look found at `host`, never what a link there leads to."""
    fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    now = os.fstat(fd)
    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) or not stat.S_ISREG(now.st_mode):
        os.close(fd)
        raise ConflictError(f"{host} changed while it was read",
                            hint="export or commit the container again")
    return os.fdopen(fd, "rb")


def export(roots: Roots, container_id: str, out: IO[bytes]) -> None:
    """The container's merged file tree as a tar stream on `out` (`docker export`)."""
    state = _state(roots, container_id)
    with _held_still(roots, state):
        _export(roots, state, out)


def _export(roots: Roots, state: Any, out: IO[bytes]) -> None:
    from stackd.images.build.mergedview import listdir

    upper, image_layers = _layers(roots, state)
    layers = (upper, *image_layers)
    skip = _left_out(upper, image_layers, state.spec)
    def entries(path: str) -> list[tuple[str, str]]:
        """(name in the tree, host path) of what `path` holds, the first last."""
        return [(f"{path}/{name}" if path else name, host)
                for name, host in sorted(listdir(layers, path).items(), reverse=True)]

    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        # Depth first in name order, without a frame per level: the container's tree
        # may nest thousands of directories deep.
        pending = entries("")
        try:
            while pending:
                rel, host = pending.pop()
                if rel in skip:
                    continue
                info = tar.gettarinfo(host, arcname=rel)
                info.uname = info.gname = ""  # the host's names for these ids say nothing
                st = os.lstat(host)
                if stat.S_ISREG(st.st_mode):
                    with _open_regular(host, st) as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
                if stat.S_ISDIR(st.st_mode):
                    pending += entries(rel)
        except OSError as err:
            if err.errno == errno.ENAMETOOLONG:
                raise HostError("a path in the container is longer than the kernel takes: "
                                "its directories nest too deeply to be read by name",
                                hint="remove or move up that tree in the container first"
                                ) from None
            raise


def commit(roots: Roots, container_id: str, ref: str | None, *, changes: Sequence[str] = (),
           message: str = "", author: str = "", pause: bool = True) -> Any:
    """A new image: the container's image with its writable layer on top, and its
    config as the container runs (env, working dir, user, command), `changes` applied
    (Dockerfile instructions that change no files: CMD, ENV, LABEL, …)."""
    from stackd.images import ImageStore
    from stackd.images.build.dockerfile import parse_dockerfile
    from stackd.images.build.imageconfig import configure
    from stackd.images.oci import now, parse_manifest

    state = _state(roots, container_id)
    upper, image_layers = _layers(roots, state)
    store = ImageStore(roots)
    base = next((i for i in (store.get(s.id) for s in store.list())
                 if i.layer_dirs == image_layers), None)
    if base is None:
        raise NotFoundError(f"the image container {state.name} was made from is no longer "
                            "in the store", hint="pull or build it again, then commit")
    manifest = parse_manifest(store.blobs.read_bytes(base.digest))
    raw = json.loads(store.blobs.read_bytes(manifest.config.digest))
    diff_ids = raw["rootfs"]["diff_ids"]
    cfg = _as_it_runs(base.config, state.spec.process)
    instructions = parse_dockerfile("\n".join(changes), "--change") if changes else []
    for ins in instructions:
        cfg = configure(cfg, ins, {}, "--change")
    if not pause and state.status == "running":
        raise UsageError(f"container {state.name} runs: stackd pauses it while its layer "
                         "is read (a running container could swap a file for a link to "
                         "the host's meanwhile)", hint="drop --no-pause, or stop it first")
    with _held_still(roots, state):
        layer = store.add_layer_from_dir(Path(upper), _left_out(upper, image_layers, state.spec))
    entry: dict[str, Any] = {"created": now(), "created_by": f"stackd commit {state.name}"}
    if message:
        entry["comment"] = message
    if author:
        entry["author"] = author
    history = [*(raw.get("history") or ()), entry]
    return store.commit(cfg, [*zip(manifest.layers, diff_ids, strict=True), layer], history,
                        names=[ref] if ref else [])


def _as_it_runs(cfg: Any, process: Any) -> Any:
    """The image config with the container's own environment, working directory, user
    and command, as Docker's commit takes them from the container."""
    update: dict[str, Any] = {"env": tuple(process.env), "working_dir": process.cwd or None}
    if process.user:
        update["user"] = process.user
    args = tuple(process.args)
    if (*(cfg.entrypoint or ()), *(cfg.cmd or ())) != args:
        if cfg.entrypoint and args[:len(cfg.entrypoint)] == tuple(cfg.entrypoint):
            update["cmd"] = args[len(cfg.entrypoint):]
        else:
            update["entrypoint"] = None
            update["cmd"] = args
    return cfg.model_copy(update=update)


def check_not_stdout_tty(out: IO[bytes]) -> None:
    if out.isatty():
        raise ConflictError("refusing to write a tar archive to a terminal",
                            hint="give -o FILE, or redirect the output")
