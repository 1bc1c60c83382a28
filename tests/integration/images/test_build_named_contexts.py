"""Named build contexts (compose's build.additional_contexts, buildx's --build-context):
a directory beside the main context that COPY --from, FROM and RUN --mount=from read,
and docker-image://REF standing in for an image name — built for real."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stackd.images import ImageStore
from stackd.images.build.mergedview import lookup
from stackd.images.errors import BuildError

pytestmark = pytest.mark.root


def read(store: ImageStore, ref: str, path: str) -> str | None:
    host = lookup(store.get(ref).layer_dirs, path)
    return Path(host).read_text() if host is not None else None


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    app, shared = tmp_path / "app", tmp_path / "shared"
    (shared / "sub").mkdir(parents=True)
    app.mkdir()
    (shared / "lib.txt").write_text("lib one\n")
    (shared / "sub" / "a.txt").write_text("a\n")
    (shared / "secret.key").write_text("never copied\n")
    (shared / ".dockerignore").write_text("*.key\n")
    os.symlink("/etc/hostname", shared / "escape")  # a link stays a link
    return app, shared


async def test_copy_from_run_mount_from_and_from_a_named_directory(
        built_base: ImageStore, dirs: tuple[Path, Path]) -> None:
    app, shared = dirs
    (app / "Dockerfile").write_text("""\
FROM shared AS lib
FROM busybox:test
COPY --from=shared lib.txt /lib.txt
COPY --from=shared sub /sub
COPY --from=shared escape /escape
COPY --from=lib /sub/a.txt /via-stage.txt
RUN --mount=type=bind,from=shared,target=/s sh -c 'ls -a /s | tr "\\n" " " > /listing'
""")
    contexts = {"shared": str(shared)}
    await built_base.build(app, tag="named:1", contexts=contexts)
    assert read(built_base, "named:1", "lib.txt") == "lib one\n"
    assert read(built_base, "named:1", "sub/a.txt") == "a\n"
    assert read(built_base, "named:1", "via-stage.txt") == "a\n"
    assert read(built_base, "named:1", "listing") == ". .. .dockerignore escape lib.txt sub "
    link = lookup(built_base.get("named:1").layer_dirs, "escape")
    assert link is not None and os.readlink(link) == "/etc/hostname"  # not the host's file
    host = lookup(built_base.get("named:1").layer_dirs, "lib.txt")
    assert host is not None and os.stat(host).st_uid == 0  # root's, as a context's copy

    # The named directory's content is in the cache key of what reads it.
    (shared / "lib.txt").write_text("lib two\n")
    await built_base.build(app, tag="named:2", contexts=contexts)
    assert read(built_base, "named:2", "lib.txt") == "lib two\n"


async def test_docker_image_stands_in_for_a_name_and_a_missing_dir_is_refused(
        built_base: ImageStore, dirs: tuple[Path, Path]) -> None:
    app, _ = dirs
    (app / "Dockerfile").write_text("FROM base\nRUN echo on-busybox > /which\n")
    await built_base.build(app, tag="pinned:1",
                           contexts={"base": "docker-image://busybox:test"})
    assert read(built_base, "pinned:1", "which") == "on-busybox\n"
    (app / "Dockerfile").write_text("FROM busybox:test\nCOPY --from=gone x /x\n")
    with pytest.raises(BuildError, match=r"build context 'gone' .* is not a directory"):
        await built_base.build(app, tag="pinned:2", contexts={"gone": str(app / "nowhere")})
