"""`RUN --mount` of every type but ssh, heredocs and the platform args, built for real
(busybox, through the runtime): what `docker init`'s Dockerfiles need — a cache kept
between builds, lock files bound in from the context — and that none of it ends up in
the image, or lets a Dockerfile read the host."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackd.images import ImageStore
from stackd.images.build.cachemounts import CacheDirs
from stackd.images.build.mergedview import lookup
from stackd.images.errors import BuildError, DockerfileError
from stackd.images.platform import host_platform

pytestmark = pytest.mark.root


@pytest.fixture
def store(built_base: ImageStore) -> ImageStore:
    return built_base


def read(store: ImageStore, ref: str, path: str) -> str | None:
    host = lookup(store.get(ref).layer_dirs, path)
    return Path(host).read_text() if host is not None else None


async def build(store: ImageStore, ctx: Path, dockerfile: str, tag: str) -> None:
    (ctx / "Dockerfile").write_text(dockerfile)
    await store.build(ctx, tag=tag)


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    d = tmp_path / "ctx"
    (d / "src").mkdir(parents=True)
    (d / "requirements.txt").write_text("flask==3.0\n")
    (d / "src/main.txt").write_text("main\n")
    (d / "private.key").write_text("never bound\n")
    (d / ".dockerignore").write_text("*.key\n")
    return d


async def test_a_cache_mount_is_kept_between_builds_and_is_in_no_image(
        store: ImageStore, ctx: Path) -> None:
    step = ("RUN --mount=type=cache,target=/root/.cache/pip,uid=1000,mode=0700,"
            "sharing=locked \\\n    sh -c 'echo {n} >> /root/.cache/pip/log && "
            "cat /root/.cache/pip/log > /seen && stat -c %u:%a /root/.cache/pip > /owner'\n")
    await build(store, ctx, "FROM busybox:test\n" + step.format(n="one"), "c:1")
    await build(store, ctx, "FROM busybox:test\n" + step.format(n="two"), "c:2")
    assert read(store, "c:1", "seen") == "one\n"
    assert read(store, "c:2", "seen") == "one\ntwo\n"  # the second build saw the first's
    assert read(store, "c:2", "owner") == "1000:700\n"
    assert lookup(store.get("c:2").layer_dirs, "root/.cache") is None
    # Another id is another cache; a read-only one cannot be written.
    await build(store, ctx, "FROM busybox:test\nRUN --mount=type=cache,id=other,"
                "target=/root/.cache/pip,ro sh -c 'ls /root/.cache/pip | wc -l > /n; "
                "touch /root/.cache/pip/x 2>/dev/null || echo ro > /ro'\n", "c:3")
    assert read(store, "c:3", "n") == "0\n" and read(store, "c:3", "ro") == "ro\n"
    # Cache dirs are root's alone, named by a hash: an id is never a path.
    dirs = CacheDirs(store.root)
    homes = list(dirs.dir.iterdir())
    assert len(homes) == 2 and all(len(h.name) == 32 for h in homes)
    assert os.stat(dirs.dir).st_mode & 0o777 == 0o700
    assert dirs.prune() == 2 and not list(dirs.dir.iterdir())


async def test_bind_mounts_show_the_context_and_stages_and_leave_nothing(
        store: ImageStore, ctx: Path) -> None:
    dockerfile = """\
FROM busybox:test AS builder
RUN mkdir /out && echo built > /out/artifact
FROM busybox:test
WORKDIR /app
RUN --mount=type=bind,source=requirements.txt,target=requirements.txt \\
    --mount=type=bind,target=/ctx \\
    --mount=type=bind,from=builder,source=/out,target=/in \\
    sh -c 'cat requirements.txt > /installed; ls -a /ctx | tr "\\n" " " > /listing; \\
           cat /in/artifact > /artifact; touch /ctx/x 2>/dev/null || echo ro > /ro'
RUN --mount=type=bind,source=src,target=/work,rw sh -c 'echo changed > /work/main.txt \\
    && cat /work/main.txt > /wrote'
"""
    await build(store, ctx, dockerfile, "b:1")
    assert read(store, "b:1", "installed") == "flask==3.0\n"
    assert read(store, "b:1", "listing") == ". .. .dockerignore Dockerfile requirements.txt src "
    assert read(store, "b:1", "artifact") == "built\n"
    assert read(store, "b:1", "ro") == "ro\n"
    assert read(store, "b:1", "wrote") == "changed\n"
    assert (ctx / "src/main.txt").read_text() == "main\n"  # rw writes are thrown away
    for gone in ("app/requirements.txt", "ctx", "in", "work"):
        assert lookup(store.get("b:1").layer_dirs, gone) is None, gone
    # What a bind mount shows is in the step's cache key: a changed lock file reruns it.
    (ctx / "requirements.txt").write_text("flask==3.1\n")
    await build(store, ctx, dockerfile, "b:2")
    assert read(store, "b:2", "installed") == "flask==3.1\n"


async def test_a_bind_mount_cannot_reach_the_host(store: ImageStore, ctx: Path,
                                                  tmp_path: Path) -> None:
    host_file = tmp_path / "host-secret"
    host_file.write_text("HOST-ONLY-7d1e\n")
    (ctx / "src/link").symlink_to(host_file)
    (ctx / "toplink").symlink_to(tmp_path)
    await build(store, ctx, "FROM busybox:test\nRUN --mount=type=bind,source=src,target=/s "
                "sh -c 'cat /s/link > /got 2>&1; readlink /s/link > /points'\n", "h:1")
    # The symlink is bound as a symlink, resolved in the container: not the host's file.
    assert read(store, "h:1", "points") == f"{host_file}\n"
    assert "HOST-ONLY" not in (read(store, "h:1", "got") or "")
    with pytest.raises(DockerfileError, match="--mount source 'toplink' is a symlink"):
        await build(store, ctx, "FROM busybox:test\n"
                    "RUN --mount=type=bind,source=toplink,target=/t true\n", "h:2")
    # `..` stops at the context's root, as in COPY: this names ctx/etc/passwd.
    with pytest.raises(BuildError, match=re.escape("'../../etc/passwd' was not found")):
        await build(store, ctx, "FROM busybox:test\n"
                    "RUN --mount=type=bind,source=../../etc/passwd,target=/t true\n", "h:3")
    with pytest.raises(BuildError, match=re.escape("'private.key' was not found")):
        await build(store, ctx, "FROM busybox:test\n"
                    "RUN --mount=type=bind,source=private.key,target=/k true\n", "h:4")


HEREDOCS = """\
FROM busybox:test
ARG TARGETARCH
ENV GREETING=hello
RUN --mount=type=tmpfs,target=/scratch <<EOF
set -e
echo x > /scratch/f
grep -q ' /scratch tmpfs' /proc/mounts
echo "$TARGETARCH" > /arch
EOF
RUN <<EOF
#!/bin/awk -f
BEGIN { print "run by awk" > "/awk.txt" }
EOF
RUN cat > /inline.txt <<'END' && echo after >> /inline.txt
$GREETING stays
END
COPY <<conf.ini <<"raw.txt" /etc/app/
greeting=$GREETING
conf.ini
raw=$GREETING
raw.txt
"""


async def test_tmpfs_mount_heredocs_and_platform_args(store: ImageStore, ctx: Path) -> None:
    await build(store, ctx, HEREDOCS, "d:1")
    assert read(store, "d:1", "arch") == f"{host_platform().architecture}\n"
    assert lookup(store.get("d:1").layer_dirs, "scratch") is None
    assert read(store, "d:1", "awk.txt") == "run by awk\n"
    assert lookup(store.get("d:1").layer_dirs, "run/stackd-heredoc") is None
    assert read(store, "d:1", "inline.txt") == "$GREETING stays\nafter\n"
    assert read(store, "d:1", "etc/app/conf.ini") == "greeting=hello\n"
    assert read(store, "d:1", "etc/app/raw.txt") == "raw=$GREETING\n"
    with pytest.raises(DockerfileError, match="this host runs linux/"):
        await build(store, ctx, "FROM --platform=linux/s390x busybox:test\n", "d:2")


def test_builder_prune_forgets_cached_steps_and_cache_mounts(store: ImageStore, ctx: Path
                                                             ) -> None:
    import subprocess
    import sys

    # No daemon: its steps need no network (tests/e2e/test_build_network.py has one).
    env = dict(os.environ, STACKD_ROOT=str(store.roots.state), STACKD_RUN=str(store.roots.run),
               STACKD_NO_AUTOSTART="1")
    (ctx / "Dockerfile").write_text(
        "FROM busybox:test\nRUN --mount=type=cache,target=/c sh -c "
        "'ls /c | wc -l > /before; cat /proc/sys/kernel/random/uuid > /ran; touch /c/stamp'\n")

    def stackd(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "stackd", *args], capture_output=True,
                              text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    stackd("build", "-q", "-t", "p:1", str(ctx))
    stackd("build", "-q", "-t", "p:2", str(ctx))  # cached: the step did not run again
    assert read(store, "p:1", "before") == read(store, "p:2", "before") == "0\n"
    out = stackd("builder", "prune", "-af")
    assert out.startswith("Deleted 1 cached build steps and 1 cache mounts"), out
    stackd("build", "-q", "-t", "p:3", str(ctx))
    assert read(store, "p:3", "ran") != read(store, "p:1", "ran")  # the step ran again
    assert read(store, "p:3", "before") == "0\n"  # on an empty cache mount
    stackd("build", "--no-cache", "-q", "-t", "p:4", str(ctx))
    assert read(store, "p:4", "before") == "1\n"  # which the build before had written to


@pytest.fixture
def http_files(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on loopback (the builder, on the host, fetches ADD's URLs)."""
    import functools
    import http.server
    import threading

    d = tmp_path / "served"
    d.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(d))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", d
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def test_add_fetches_urls_as_docker_does(store: ImageStore, ctx: Path,
                                               http_files: tuple[str, Path]) -> None:
    import hashlib
    import io
    import tarfile

    base, served = http_files
    (served / "tool.sh").write_text("#!/bin/sh\necho tool\n")
    os.utime(served / "tool.sh", (1_600_000_000, 1_600_000_000))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.addfile(tarfile.TarInfo("inside"), io.BytesIO(b""))
    (served / "pack.tar.gz").write_bytes(buf.getvalue())
    digest = hashlib.sha256((served / "tool.sh").read_bytes()).hexdigest()
    await build(store, ctx, f"FROM busybox:test\nADD {base}/tool.sh /usr/local/bin/\n"
                f"ADD --chmod=755 --checksum=sha256:{digest} {base}/tool.sh /bin/tool\n"
                f"ADD {base}/pack.tar.gz /opt/\n", "u:1")
    layers = store.get("u:1").layer_dirs
    fetched = Path(lookup(layers, "usr/local/bin/tool.sh") or "/nonexistent")
    assert fetched.read_text() == "#!/bin/sh\necho tool\n"
    assert os.stat(fetched).st_mode & 0o7777 == 0o600  # Docker's mode for a URL's file
    assert int(os.stat(fetched).st_mtime) == 1_600_000_000  # the server's Last-Modified
    assert os.stat(lookup(layers, "bin/tool") or "/nonexistent").st_mode & 0o7777 == 0o755
    assert lookup(layers, "opt/pack.tar.gz") is not None  # never unpacked from a URL
    assert lookup(layers, "opt/inside") is None
    # A changed file is fetched again, not taken from the cache.
    (served / "tool.sh").write_text("#!/bin/sh\necho tool 2\n")
    await build(store, ctx, f"FROM busybox:test\nADD {base}/tool.sh /usr/local/bin/\n", "u:2")
    assert read(store, "u:2", "usr/local/bin/tool.sh") == "#!/bin/sh\necho tool 2\n"

    for dockerfile, error, message in [
        (f"ADD --checksum=sha256:{'0' * 64} {base}/tool.sh /x", BuildError,
         "its content is sha256:"),
        (f"ADD {base}/missing.txt /x", BuildError, "the server answered 404"),
        (f"ADD {base}/ /opt/", DockerfileError, "the URL names no file"),
        (f"COPY {base}/tool.sh /x", DockerfileError, "takes URLs only in an ADD of URLs"),
        (f"ADD {base}/tool.sh requirements.txt /x/", DockerfileError, "takes URLs only"),
        ("ADD https://example.com/repo.git /src", DockerfileError, "of a git repository"),
        ("ADD http://127.0.0.1:1/x /x", BuildError, "ADD http://127.0.0.1:1/x: "),
    ]:
        with pytest.raises(error, match=re.escape(message)):
            await build(store, ctx, f"FROM busybox:test\n{dockerfile}\n", "u:bad")


async def test_a_stage_or_image_path_cannot_climb_to_the_host(
        store: ImageStore, ctx: Path, tmp_path: Path) -> None:
    """`..` stops at the stage's root, as BuildKit's: it read the host's files through
    the layer directories before (`COPY --from=src ../../../../etc/shadow /x`)."""
    host_file = tmp_path / "host-secret"
    host_file.write_text("HOST-ONLY-91c2\n")
    up = "../" * (len(Path(store.get("busybox:test").layer_dirs[0]).parts) + 2)
    climb = f"{up}{str(host_file).lstrip('/')}"
    for n, step in enumerate([
            f"COPY --from=src {climb} /stolen\n",
            f"COPY --from=src /{climb} /stolen\n",
            f"COPY --from=busybox:test {climb} /stolen\n",
            f"RUN --mount=type=bind,from=src,source={climb},target=/t cat /t > /stolen\n"]):
        with pytest.raises(BuildError, match=r"does not exist|not found"):
            await build(store, ctx, f"FROM busybox:test AS src\nFROM busybox:test\n{step}",
                        f"climb:{n}")
    # Inside the stage, `..` is as good as `/`: it names the stage's own file.
    await build(store, ctx, "FROM busybox:test AS src\nRUN echo mine > /etc/own\n"
                f"FROM busybox:test\nCOPY --from=src {up}etc/own /own\n", "climb:ok")
    assert read(store, "climb:ok", "own") == "mine\n"


def with_config(store: ImageStore, tmp_path: Path, ref: str, new_ref: str,
                **config: object) -> None:
    """`ref` saved, its config's fields replaced as a hostile publisher would write
    them (no model in the way), and loaded again as `new_ref`."""
    import hashlib
    import json
    import tarfile

    store.save([ref], tmp_path / "saved.tar")
    tree = tmp_path / "saved"
    with tarfile.open(tmp_path / "saved.tar") as t:
        t.extractall(tree, filter="data")
    manifest = json.loads((tree / "manifest.json").read_text())
    raw = json.loads((tree / manifest[0]["Config"]).read_text())
    raw["config"].update(config)
    data = json.dumps(raw).encode()
    digest = hashlib.sha256(data).hexdigest()
    (tree / "blobs" / "sha256" / digest).write_bytes(data)
    manifest[0].update(Config=f"blobs/sha256/{digest}", RepoTags=[new_ref])
    (tree / "manifest.json").write_text(json.dumps(manifest))
    (tree / "index.json").unlink(missing_ok=True)
    with tarfile.open(tmp_path / "hostile.tar", "w") as t:
        for name in ("manifest.json", "oci-layout", "blobs"):
            t.add(tree / name, arcname=name)
    store.load(tmp_path / "hostile.tar")


async def test_an_images_working_dir_cannot_place_files_on_the_host(
        store: ImageStore, ctx: Path, tmp_path: Path) -> None:
    """A base image's WorkingDir is the publisher's: a relative one climbing with `..`
    made `COPY f .` (and every relative destination) write in the host's tree."""
    landing = tmp_path / "landing"
    up = "../" * (len(Path(store.snapshots.root).parts) + 4)
    with_config(store, tmp_path, "busybox:test", "evil-wd:1",
                WorkingDir=f"{up}{str(landing).lstrip('/')}")
    await build(store, ctx, "FROM evil-wd:1\nCOPY requirements.txt .\n"
                "COPY <<EOF note\nhere\nEOF\n", "evil-wd:built")
    assert not landing.exists()
    assert store.get("evil-wd:1").config.working_dir == str(landing)  # inside the image
    inside = str(landing).lstrip("/")
    assert read(store, "evil-wd:built", f"{inside}/requirements.txt") == "flask==3.0\n"
    assert read(store, "evil-wd:built", f"{inside}/note") == "here\n"
