"""`stackd images REPOSITORY[:TAG]`, as `docker images redis`: stackd took no name."""

from __future__ import annotations

from stackd.cli.cmd_images import matching
from stackd.images.models import ImageSummary


def summary(id_: str, *refs: str) -> ImageSummary:
    return ImageSummary(id=id_, digest=id_, references=refs, size=1)


IMAGES = [
    summary("a", "docker.io/library/redis:7", "docker.io/library/redis:latest",
            "registry.local:5000/redis:7"),
    summary("b", "docker.io/library/redis:6"),
    summary("c", "docker.io/library/redisx:7"),
    summary("d"),  # no name
]


def test_a_repository_shows_its_images_with_its_names_only() -> None:
    got = matching(IMAGES, "redis")
    assert [(i.id, i.references) for i in got] == [
        ("a", ("docker.io/library/redis:7", "docker.io/library/redis:latest")),
        ("b", ("docker.io/library/redis:6",)),
    ]


def test_a_tag_narrows_it_and_a_registry_is_part_of_the_name() -> None:
    assert [(i.id, i.references) for i in matching(IMAGES, "redis:7")] == [
        ("a", ("docker.io/library/redis:7",))]
    assert [i.id for i in matching(IMAGES, "registry.local:5000/redis")] == ["a"]
    assert matching(IMAGES, "docker.io/library/redis:5") == []
    assert matching(IMAGES, "nosuch") == []
