"""Dockerfile builds end to end: RUN in real containers through the runtime, the cache."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from stackd.images import ImageStore
from stackd.images.build.mergedview import lookup
from stackd.images.errors import BuildError
from stackd.images.progress import ProgressEvent
from stackd.roots import Roots

pytestmark = pytest.mark.root

DOCKERFILE = """\
ARG BASE=busybox:test
FROM ${BASE} AS builder
ARG GREETING=hello
WORKDIR /src
COPY app/ ./
RUN echo "$GREETING from $(cat name.txt)" > /out.txt && mkdir -p /opt/gen && touch /opt/gen/y

FROM ${BASE}
RUN rm /bin/vi && rm -r /var/www
RUN ["/bin/sh", "-c", "echo exec form as $(id -u) > /exec.txt"]
COPY --from=builder /out.txt /srv/out.txt
COPY --from=builder /opt/gen /opt/gen
COPY --from=busybox:test /etc/group /srv/group-from-image
COPY --chown=app:staff app/name.txt /home/app/
ADD files.tar.gz /opt/
COPY . /ctx/
ENV A=1 B="two words"
LABEL org.example=yes
EXPOSE 8080 53/udp
USER app
WORKDIR /home/app
HEALTHCHECK --interval=5s --retries=2 CMD wget -q localhost || exit 1
STOPSIGNAL SIGINT
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /srv/out.txt"]
"""


@pytest.fixture
def context(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    (ctx / "app").mkdir(parents=True)
    (ctx / "app/name.txt").write_text("stackd")
    (ctx / "app/run.sh").write_text("#!/bin/sh\n")
    os.chmod(ctx / "app/run.sh", 0o755)
    (ctx / "secret.key").write_text("do not ship")
    (ctx / ".dockerignore").write_text("*.key\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        ti = tarfile.TarInfo("from-tar/readme")
        data = b"unpacked by ADD"
        ti.size = len(data)
        tar.addfile(ti, io.BytesIO(data))
    (ctx / "files.tar.gz").write_bytes(buf.getvalue())
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    return ctx


def view(store: ImageStore, ref: str, path: str) -> Path | None:
    host = lookup(store.get(ref).layer_dirs, path)
    return Path(host) if host else None


async def test_multi_stage_build_then_unchanged_rebuild_is_fully_cached(
        built_base: ImageStore, context: Path) -> None:
    store = built_base
    events: list[ProgressEvent] = []
    img = await store.build(context, tag="app:1", build_args={"GREETING": "hi"},
                            progress=events.append)
    assert img.references == ("docker.io/library/app:1",)
    out = view(store, "app:1", "/srv/out.txt")
    assert out is not None and out.read_text() == "hi from stackd\n"
    assert view(store, "app:1", "/opt/gen/y") is not None
    assert view(store, "app:1", "/bin/vi") is None  # deleted by RUN: a whiteout in the layer
    assert view(store, "app:1", "/var/www/index.html") is None
    name = view(store, "app:1", "/home/app/name.txt")
    assert name is not None and (name.stat().st_uid, name.stat().st_gid) == (1000, 50)
    readme = view(store, "app:1", "/opt/from-tar/readme")
    assert readme is not None and readme.read_text() == "unpacked by ADD"
    run_sh = view(store, "app:1", "/ctx/app/run.sh")
    assert run_sh is not None and stat.S_IMODE(run_sh.stat().st_mode) == 0o755
    assert view(store, "app:1", "/ctx/secret.key") is None  # .dockerignore
    assert view(store, "app:1", "/src") is None  # only in the builder stage
    cfg = img.config
    assert cfg.env[-2:] == ("A=1", "B=two words")
    assert cfg.labels == {"org.example": "yes"}
    assert cfg.exposed_ports == ("53/udp", "8080/tcp")
    assert (cfg.user, cfg.working_dir, cfg.stop_signal) == ("app", "/home/app", "SIGINT")
    assert cfg.entrypoint == ("/bin/sh", "-c") and cfg.cmd == ("cat /srv/out.txt",)
    assert cfg.healthcheck is not None
    assert cfg.healthcheck.test == ("CMD-SHELL", "wget -q localhost || exit 1")
    assert (cfg.healthcheck.interval, cfg.healthcheck.retries) == (5.0, 2)
    # busybox, RUN ×2, COPY --from ×3, COPY --chown, ADD, COPY . (WORKDIR existed: no layer)
    assert len(store.get("app:1").layer_dirs) == 9
    group = view(store, "app:1", "/srv/group-from-image")
    assert group is not None and "staff:x:50:app" in group.read_text()
    exec_out = view(store, "app:1", "/exec.txt")
    assert exec_out is not None and exec_out.read_text() == "exec form as 0\n"

    again: list[ProgressEvent] = []
    rebuilt = await store.build(context, tag="app:1", build_args={"GREETING": "hi"},
                                progress=again.append)
    assert (rebuilt.id, rebuilt.digest) == (img.id, img.digest)
    assert not [e for e in again if e.action == "log"]  # no RUN executed
    cached = [e for e in again if e.item.strip() == "cached"]
    assert len(cached) == 3 + 8  # every layer-making step of both stages

    stage: list[ProgressEvent] = []
    builder = await store.build(context, tag="app:builder", target="builder",
                                build_args={"GREETING": "hi"}, progress=stage.append)
    assert not [e for e in stage if e.action == "log"]  # its steps were cached too
    out_b = view(store, "app:builder", "/out.txt")
    assert out_b is not None and builder.config.working_dir == "/src"

    changed: list[ProgressEvent] = []
    (context / "app/name.txt").write_text("changed")
    third = await store.build(context, tag="app:2", build_args={"GREETING": "hi"},
                              progress=changed.append)
    assert third.id != img.id
    out2 = view(store, "app:2", "/srv/out.txt")
    assert out2 is not None and out2.read_text() == "hi from changed\n"


async def test_failing_run_names_the_line_and_exit_code(built_base: ImageStore,
                                                        tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox:test\nRUN echo before\nRUN echo oops; exit 3\n")
    with pytest.raises(BuildError) as err:
        await built_base.build(tmp_path)
    text = str(err.value)
    assert f"{tmp_path / 'Dockerfile'}:3: RUN 'echo oops; exit 3' exited with 3" in text
    assert "oops" in text


async def test_scratch_copy_only_needs_no_runtime(roots: Roots, tmp_path: Path) -> None:
    store = ImageStore(roots)
    (tmp_path / "hello").write_text("hi")
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY hello /\nCMD [\"/hello\"]\n")
    img = await store.build(tmp_path, tag="tiny:1")
    assert (Path(img.layer_dirs[0]) / "hello").read_text() == "hi"
    assert img.config.cmd == ("/hello",)


async def test_an_inline_dockerfile_builds_from_its_text(roots: Roots, tmp_path: Path
                                                        ) -> None:
    # compose's build.dockerfile_inline: no Dockerfile in the context at all.
    store = ImageStore(roots)
    (tmp_path / "hello").write_text("hi")
    img = await store.build(tmp_path, tag="inline:1",
                            dockerfile_text="FROM scratch\nCOPY hello /\nCMD [\"/hello\"]\n")
    assert (Path(img.layer_dirs[0]) / "hello").read_text() == "hi"
    assert img.config.cmd == ("/hello",)
    assert not (tmp_path / "Dockerfile").exists()


async def test_copy_cannot_reach_outside_the_context_through_a_symlink(
        roots: Roots, tmp_path: Path) -> None:
    from stackd.images.errors import DockerfileError

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host secret")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "link").symlink_to(outside)
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY link/secret /\n")
    with pytest.raises(DockerfileError) as err:
        await ImageStore(roots).build(ctx)
    assert "source 'link/secret' is outside the build context" in str(err.value)
    # The symlink itself may be copied: as a symlink, never followed.
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY link /l\n")
    img = await ImageStore(roots).build(ctx)
    assert os.readlink(Path(img.layer_dirs[0]) / "l") == str(outside)


async def test_copy_never_writes_through_a_symlink_it_staged(roots: Roots, tmp_path: Path
                                                            ) -> None:
    host_dir = tmp_path / "host-etc"
    host_dir.mkdir(mode=0o700)
    ctx = tmp_path / "ctx"
    (ctx / "one").mkdir(parents=True)
    (ctx / "one/sub").symlink_to(host_dir)
    (ctx / "two/sub").mkdir(parents=True, mode=0o777)
    os.chmod(ctx / "two/sub", 0o777)
    (ctx / "two/sub/passwd").write_text("pwned")
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY one/ two/ /dst/\n")
    img = await ImageStore(roots).build(ctx)
    # The later directory replaced the staged link; nothing reached the link's target.
    assert list(host_dir.iterdir()) == []
    assert stat.S_IMODE(host_dir.stat().st_mode) == 0o700
    assert (Path(img.layer_dirs[0]) / "dst/sub/passwd").read_text() == "pwned"



async def test_a_context_nested_past_the_recursion_limit_is_copied_and_copied_again(
        roots: Roots, tmp_path: Path) -> None:
    """The context's walk and COPY --from's walk of an image recursed per level: a tree
    ~1,000 deep ended the build in a RecursionError traceback."""
    from stackd.trees import remove_tree

    depth = 1100
    from support.deeptree import nest

    ctx = tmp_path / "ctx"
    (ctx / "deep").mkdir(parents=True)
    nest(ctx / "deep", depth - 1, name="d", leaf=b"deep")
    (ctx / "Dockerfile").write_text("FROM scratch AS first\nCOPY deep /deep\n"
                                    "FROM scratch\nCOPY --from=first /deep /again\n")
    inner = "/".join(["d"] * (depth - 1)) + "/leaf"
    try:
        img = await ImageStore(roots).build(ctx, tag="deep:1")
        assert (Path(img.layer_dirs[0]) / "again" / inner).read_bytes() == b"deep"
    finally:  # pytest's own removal of tmp_path recurses
        remove_tree(ctx, ignore_errors=True)
        remove_tree(roots.state, ignore_errors=True)
