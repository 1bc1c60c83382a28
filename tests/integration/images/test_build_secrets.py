"""`RUN --mount=type=secret` (issue #15, build.secrets): the secret is readable during
that RUN step only, at /run/secrets/ID, and the built image holds no trace of it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stackd.images import ImageStore
from stackd.images.build.mergedview import lookup
from stackd.images.errors import BuildError, DockerfileError

pytestmark = pytest.mark.root

SECRET = "s3cret-value-7f1c"

DOCKERFILE = f"""\
FROM busybox:test
RUN --mount=type=secret,id=token test "$(cat /run/secrets/token)" = "{SECRET}" \\
    && ! touch /run/secrets/token 2>/dev/null && echo checked > /proof
RUN --mount=type=secret,id=token,target=/etc/app/key --mount=type=secret,id=absent \\
    wc -c < /etc/app/key > /key-size
RUN test ! -e /run/secrets/token
"""


@pytest.fixture
def store(built_base: ImageStore) -> ImageStore:
    return built_base


def files_of(dirs: tuple[str, ...]) -> list[Path]:
    return [Path(d, *rel) for d in dirs for rel in
            ((os.path.relpath(os.path.join(r, n), d),) for r, ds, fs in os.walk(d)
             for n in [*ds, *fs])]


async def test_a_secret_is_mounted_for_its_run_step_and_left_out_of_the_image(
        store: ImageStore, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    token = tmp_path / "token.txt"
    token.write_text(SECRET)
    image = await store.build(ctx, tag="with-secret:1", secrets={"token": token})

    layers = store.get("with-secret:1").layer_dirs
    proof, size = lookup(layers, "proof"), lookup(layers, "key-size")
    assert proof is not None and Path(proof).read_text() == "checked\n"
    assert size is not None and Path(size).read_text().strip() == str(len(SECRET))
    # No mount point, no directory made for one, and the value in no file and no config.
    for path in ("run/secrets", "run/secrets/token", "etc/app", "etc/app/key"):
        assert lookup(layers, path) is None, path
    base = set(store.get("busybox:test").layer_dirs)
    for f in files_of(tuple(d for d in layers if d not in base)):
        assert f.is_symlink() or not f.is_file() or SECRET.encode() not in f.read_bytes(), f
    assert SECRET not in image.config.model_dump_json()


async def test_a_required_secret_not_given_and_an_ssh_mount_are_refused(
        store: ImageStore, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM busybox:test\nRUN --mount=type=secret,id=key,required=true true\n")
    with pytest.raises(BuildError, match="RUN needs the build secret 'key'"):
        await store.build(ctx, tag="x:1")
    (ctx / "Dockerfile").write_text("FROM busybox:test\nRUN --mount=type=ssh true\n")
    with pytest.raises(DockerfileError, match="--mount=type=ssh is not supported"):
        await store.build(ctx, tag="x:1")
