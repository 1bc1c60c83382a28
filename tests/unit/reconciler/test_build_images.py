"""`up`'s image resolution against the real ImageStore: a `build:` service is built."""

from __future__ import annotations

from pathlib import Path

from stackd.images import ImageStore
from stackd.reconciler.ports import Adapters
from stackd.reconciler.reconcile import resolve_images
from stackd.roots import Roots
from stackd.spec import load_text

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
