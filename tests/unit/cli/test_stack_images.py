"""Which images `pull` and `push` with no argument take (stackd.cli.stack_images)."""

from __future__ import annotations

from stackd.cli.stack_images import pull_refs, push_refs
from stackd.spec import load_text


def test_pull_takes_images_nothing_builds_push_takes_built_ones_that_name_theirs() -> None:
    stack = load_text("services:\n"
                      "  web: {build: ., image: 'reg.test/web:2'}\n"
                      "  tool: {build: .}\n"
                      "  db: {image: 'postgres:16'}\n"
                      "  replica: {image: 'postgres:16'}\n"
                      "  cache: {image: 'redis:7'}\n", environ={}, project_name="shop")
    assert pull_refs(stack) == (["redis:7", "postgres:16"], ["tool", "web"])
    assert push_refs(stack) == ["reg.test/web:2"]
