"""Reference normalisation, as Docker does it; pure."""

from __future__ import annotations

import pytest

from stackd.images.errors import ReferenceError_
from stackd.images.reference import parse

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(("text", "full"), [
    ("redis", "docker.io/library/redis:latest"),
    ("redis:7", "docker.io/library/redis:7"),
    ("bitnami/redis:7.2", "docker.io/bitnami/redis:7.2"),
    ("docker.io/redis", "docker.io/library/redis:latest"),
    ("index.docker.io/library/redis:1", "docker.io/library/redis:1"),
    ("ghcr.io/owner/app", "ghcr.io/owner/app:latest"),
    ("localhost/app:dev", "localhost/app:dev"),
    ("localhost:5000/app", "localhost:5000/app:latest"),
    ("127.0.0.1:5000/a/b/c:1.0-rc_1", "127.0.0.1:5000/a/b/c:1.0-rc_1"),
    (f"redis@{DIGEST}", f"docker.io/library/redis@{DIGEST}"),
    (f"redis:7@{DIGEST}", f"docker.io/library/redis:7@{DIGEST}"),
    ("my-registry.example.com:443/team/svc_a__b:tag",
     "my-registry.example.com:443/team/svc_a__b:tag"),
])
def test_normalises_like_docker(text: str, full: str) -> None:
    assert str(parse(text)) == full


def test_familiar_form_strips_the_defaults() -> None:
    assert parse("redis:7").familiar() == "redis:7"
    assert parse("bitnami/redis").familiar() == "bitnami/redis:latest"
    assert parse("ghcr.io/a/b:1").familiar() == "ghcr.io/a/b:1"


def test_parts() -> None:
    ref = parse(f"127.0.0.1:5000/team/app@{DIGEST}")
    assert (ref.domain, ref.path, ref.tag, ref.digest) == ("127.0.0.1:5000", "team/app", None,
                                                          DIGEST)
    assert ref.locator == DIGEST
    assert parse("app").locator == "latest"


@pytest.mark.parametrize(("text", "why"), [
    ("Redis", "repository names must be lower case"),
    ("redis:", "'' is not a valid tag"),
    ("redis@sha256:abc", "'sha256:abc' is not a sha256 digest"),
    ("a//b", "'' is not a valid name component"),
    ("", "it is empty"),
    ("redis:-bad", "'-bad' is not a valid tag"),
])
def test_bad_references_say_why(text: str, why: str) -> None:
    with pytest.raises(ReferenceError_) as err:
        parse(text)
    assert f"invalid image reference '{text}': {why}" in str(err.value)
    assert err.value.exit_code == 2
