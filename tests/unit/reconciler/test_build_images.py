"""`up`'s image resolution against the real ImageStore: a `build:` service is built."""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path

import pytest

from stackd.errors import NotFoundError, StackdError
from stackd.images import ImageStore
from stackd.reconciler.ports import Adapters
from stackd.reconciler.reconcile import resolve_images
from stackd.roots import Roots
from stackd.spec import load_text


async def failure(call: Awaitable[object]) -> StackdError:
    """The one StackdError the call failed with (resolve_images' nursery groups it, as
    the daemon's controller finds it)."""
    with pytest.raises(BaseExceptionGroup) as group:
        await call
    (error,) = group.value.exceptions
    assert isinstance(error, StackdError)
    return error


STACK = """
services:
  app:
    build:
      context: ./app
      args: {GREETING: hello}
"""


async def test_a_missing_image_is_built_and_up_build_builds_it_again(
        roots: Roots, tmp_path: Path) -> None:
    context = tmp_path / "app"
    context.mkdir()
    (context / "Dockerfile").write_text(
        'FROM scratch\nARG GREETING\nLABEL greeting=$GREETING\nCOPY hello /hello\n'
        'CMD ["/hello"]\n')
    (context / "hello").write_text("one\n")
    store = ImageStore(roots)
    ports = Adapters(None, store, None, None, None)  # type: ignore[arg-type]
    stack = load_text(STACK, project_name="demo", environ={}, project_directory=tmp_path)

    first = (await resolve_images(stack, ports, None))["app"]
    assert tuple(first.config.cmd or ()) == ("/hello",)
    assert first.config.labels == {"greeting": "hello"}  # the stack's build args
    assert store.get("demo-app").id == first.id  # tagged as `stackd build` tags it
    assert (Path(first.layer_dirs[0]) / "hello").read_text() == "one\n"

    (context / "hello").write_text("two\n")
    again = (await resolve_images(stack, ports, None))["app"]
    assert again.id == first.id  # present: not built again

    rebuilt = (await resolve_images(stack, ports, None, build=True))["app"]
    assert rebuilt.id != first.id
    assert (Path(rebuilt.layer_dirs[0]) / "hello").read_text() == "two\n"
    assert store.get("demo-app").id == rebuilt.id


async def test_no_build_builds_nothing_and_names_the_service_whose_image_is_missing(
        roots: Roots, tmp_path: Path) -> None:
    context = tmp_path / "app"
    context.mkdir()
    (context / "Dockerfile").write_text('FROM scratch\nCOPY hello /hello\n')
    (context / "hello").write_text("one\n")
    store = ImageStore(roots)
    ports = Adapters(None, store, None, None, None)  # type: ignore[arg-type]
    stack = load_text(STACK, project_name="demo", environ={}, project_directory=tmp_path)

    refused = await failure(resolve_images(stack, ports, None, no_build=True))
    assert isinstance(refused, NotFoundError)
    assert "service 'app'" in str(refused) and "--no-build" in str(refused)
    assert "stackd build app" in (refused.hint or "")
    with pytest.raises(NotFoundError):
        store.get("demo-app")  # nothing was built

    built = (await resolve_images(stack, ports, None))["app"]
    (context / "hello").write_text("two\n")
    always = load_text(STACK.replace("    build:", "    pull_policy: build\n    build:"),
                       project_name="demo", environ={}, project_directory=tmp_path)
    kept = (await resolve_images(always, ports, None, no_build=True))["app"]
    assert kept.id == built.id  # pull_policy: build, but --no-build: not built again


async def test_no_build_pulls_a_service_that_names_its_image(roots: Roots,
                                                            tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM scratch\n")
    store = ImageStore(roots)
    ports = Adapters(None, store, None, None, None)  # type: ignore[arg-type]
    # Nothing listens on 127.0.0.1:9: the pull is tried, and fails as a pull.
    stack = load_text(STACK + "    image: 127.0.0.1:9/demo/app:1\n", project_name="demo",
                      environ={}, project_directory=tmp_path)
    failed = await failure(resolve_images(stack, ports, None, no_build=True))
    assert "127.0.0.1:9 could not be reached" in str(failed)
    with pytest.raises(NotFoundError):
        store.get("127.0.0.1:9/demo/app:1")


async def test_parallel_limits_how_many_images_are_resolved_at_once() -> None:
    """--parallel 1: one pull (or build) at a time; without it, all at once."""
    import trio

    from stackd.images.models import Image, ImageConfig

    class Counting:
        def __init__(self) -> None:
            self.now = self.most = 0

        async def ensure(self, ref: str, policy: str, **_: object) -> Image:
            self.now += 1
            self.most = max(self.most, self.now)
            await trio.sleep(0.01)
            self.now -= 1
            return Image(id="sha256:" + "1" * 64, digest="sha256:" + "2" * 64,
                         references=(ref,), config=ImageConfig(), layer_dirs=())

    stack = load_text("services:\n" + "".join(f"  s{i}: {{image: 'img{i}'}}\n"
                                               for i in range(4)), environ={})
    for parallel, most in ((1, 1), (None, 4)):
        images = Counting()
        ports = Adapters(None, images, None, None, None)  # type: ignore[arg-type]
        found = await resolve_images(stack, ports, None, parallel=parallel)
        assert sorted(found) == ["s0", "s1", "s2", "s3"] and images.most == most
