"""The pure parts of GitOps: webhook signatures, credential masking, status
derivation, names that must never be paths."""

from __future__ import annotations

import dataclasses

import pytest

from stackd.errors import UsageError
from stackd.gitops.masking import has_password, mask_text, mask_url
from stackd.gitops.names import check_name, check_ref, check_sha, check_subpath
from stackd.gitops.signatures import check, github_signature
from stackd.gitops.status import Facts, derive
from stackd.spec.model import Stack

SECRET = b"s3cret"
BODY = b'{"ref":"refs/heads/main"}'


def test_github_signature_is_checked_over_the_body() -> None:
    good = github_signature(SECRET, BODY)
    # GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!"
    assert github_signature(b"It's a Secret to Everybody", b"Hello, World!") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
    assert check(SECRET, {"x-hub-signature-256": good}, BODY) == "github"
    assert check(SECRET, {"x-hub-signature-256": good}, BODY + b" ") is None
    assert check(b"other", {"x-hub-signature-256": good}, BODY) is None
    assert check(SECRET, {"x-hub-signature-256": "sha256=00"}, BODY) is None


def test_gitlab_token_and_shared_secret() -> None:
    assert check(SECRET, {"x-gitlab-token": "s3cret"}, BODY) == "gitlab"
    assert check(SECRET, {"x-gitlab-token": "s3cre"}, BODY) is None
    assert check(SECRET, {"x-stackd-secret": "s3cret"}, BODY) == "secret"
    assert check(SECRET, {}, BODY) is None
    assert check(b"", {"x-stackd-secret": ""}, BODY) is None  # no secret: nothing passes


def test_passwords_in_urls_and_tokens_are_masked() -> None:
    assert mask_url("https://bob:hunter2@git.example/r.git") == \
        "https://bob:***@git.example/r.git"
    assert mask_url("https://bob@git.example/r.git") == "https://bob@git.example/r.git"
    assert mask_url("ssh://git@host:22/r.git") == "ssh://git@host:22/r.git"
    text = "fatal: unable to access 'http://u:tok3n@127.0.0.1:1/r/': 401; header tok3n"
    masked = mask_text(text, ["tok3n"])
    assert "tok3n" not in masked and "http://u:***@127.0.0.1:1/r/" in masked
    assert has_password("https://u:p@h/r") and not has_password("https://u@h/r")


@pytest.mark.parametrize("name", ["../x", "a/b", "", "A", "-x", ".", "x" * 64, "a b"])
def test_source_names_are_never_paths(name: str) -> None:
    with pytest.raises(UsageError):
        check_name(name)


def test_refs_and_paths_stay_plain() -> None:
    assert check_name("web-1") == "web-1"
    assert check_ref("branch", "release/1.x") == "release/1.x"
    for bad in ("--upload-pack=x", "a..b", "x.lock", "a//b", "/abs"):
        with pytest.raises(UsageError):
            check_ref("branch", bad)
    assert check_sha("a" * 40) == "a" * 40
    for bad in ("abc1234", "A" * 40, "-" + "a" * 39):
        with pytest.raises(UsageError):
            check_sha(bad)
    assert check_subpath("--path", "./deploy/prod/") == "deploy/prod"
    assert check_subpath("--path", ".") == "."
    for bad in ("../up", "/etc", "a/../../b"):
        with pytest.raises(UsageError):
            check_subpath("--path", bad)


BASE = Facts(head="b", applied="b", failed="", error="", reconciled="ok", converged=True,
             drift="", self_heal=True, suspended=False)


@pytest.mark.parametrize(("change", "phase"), [
    ({}, "Synced"),
    ({"head": "c"}, "OutOfSync"),
    ({"head": "c", "suspended": True}, "OutOfSync"),
    ({"applied": ""}, "OutOfSync"),
    ({"converged": False}, "Progressing"),
    ({"reconciled": "requeue"}, "Progressing"),
    ({"reconciled": "retry"}, "Degraded"),
    ({"reconciled": "terminal"}, "Degraded"),
    ({"drift": "stopped by hand"}, "OutOfSync"),
    ({"drift": "stopped by hand", "self_heal": False}, "Degraded"),
    ({"error": "compose.yaml:3:5: bad"}, "Failed"),
    ({"head": "c", "failed": "c", "applied": "a"}, "Failed"),
    ({"head": "d", "failed": "c", "applied": "a"}, "OutOfSync"),  # a newer commit came
])
def test_status_derivation(change: dict[str, object], phase: str) -> None:
    assert derive(dataclasses.replace(BASE, **change)) == phase  # type: ignore[arg-type]


def test_only_volumes_the_stack_itself_dropped_are_pruned() -> None:
    from stackd.gitops.prune import dropped_volumes
    from stackd.spec import load_text

    def stack(volumes: str) -> Stack:
        return load_text("services:\n  a:\n    image: busybox\nvolumes:\n" + volumes,
                         project_name="site")

    old = stack("  data: {}\n  logs: {name: shared-logs}\n  ext: {external: true}\n"
                "  cache: {}\n")
    new = stack("  data: {}\n")
    assert dropped_volumes([old], new) == ["shared-logs", "site_cache"]  # not ext
    assert dropped_volumes([], new) == []
    assert dropped_volumes([old], old) == []
