"""`pull` and `push` with no image: the stack's services' images, as compose's, through
the CLI against a real registry on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import CLI, DEMO_IMAGE
from support.hostpackages import require
from support.registry import RunningRegistry, registry_available, start_registry

from stackd.roots import Roots

pytestmark = [pytest.mark.root]


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    require(registry_available(), "docker-registry")
    reg = start_registry(tmp_path / "registry")
    try:
        yield reg
    finally:
        reg.stop()


def test_push_and_pull_without_an_image_take_the_stacks_services(
        roots: Roots, demo_image: str, registry: RunningRegistry, tmp_path: Path) -> None:
    work = tmp_path / "shop"
    work.mkdir()
    ref = f"{registry.host}/shop/app:1"
    (work / "Dockerfile").write_text(f"FROM {DEMO_IMAGE}\n")
    (work / "compose.yaml").write_text(
        "services:\n"
        f"  app: {{build: ., image: '{ref}'}}\n"  # built here: pushed, not pulled
        f"  worker: {{image: '{ref}'}}\n"  # someone else's: pulled, not pushed
        f"  cache: {{image: '{ref}'}}\n")  # the same image: pulled once
    cli = CLI(roots, work)
    cli("tag", DEMO_IMAGE, ref)
    r = cli("push")
    assert r.stdout.count("digest: sha256:") == 1 and r.stdout.startswith(f"{ref}: "), r

    cli("rmi", ref)
    assert ref not in cli("images").stdout
    r = cli("pull")
    assert r.stdout.count(": sha256:") == 1 and ref in r.stdout, r
    assert "not pulled, built here: app" in r.stderr, r.stderr
    assert "shop/app" in cli("images").stdout


def test_pull_of_services_as_compose_takes_them(
        roots: Roots, demo_image: str, registry: RunningRegistry, tmp_path: Path) -> None:
    """`pull SERVICE…` pulls those services' images (with --include-deps, what they
    depend on too); `--ignore-pull-failures` goes on past one that cannot be pulled;
    `--policy missing` leaves what the store holds; one name with a ':' is an image."""
    work = tmp_path / "deps"
    work.mkdir()
    web, db = f"{registry.host}/deps/web:1", f"{registry.host}/deps/db:1"
    gone = f"{registry.host}/deps/nowhere:1"
    (work / "compose.yaml").write_text(
        "services:\n"
        f"  web: {{image: '{web}', depends_on: [db]}}\n"
        f"  db: {{image: '{db}'}}\n"
        f"  broken: {{image: '{gone}'}}\n")
    cli = CLI(roots, work)
    for ref in (web, db):
        cli("tag", DEMO_IMAGE, ref)
        cli("push", "-q", ref)
        cli("rmi", ref)

    r = cli("pull", "web")
    assert web in r.stdout and db not in r.stdout, r.stdout
    r = cli("pull", "--include-deps", "web")
    assert web in r.stdout and db in r.stdout, r.stdout
    r = cli("pull", "--policy", "missing", "-q", "web", "db")
    assert len(r.stdout.split()) == 2  # both held: nothing fetched, each digest said
    r = cli("pull", check=False)
    assert r.returncode != 0 and "nowhere" in r.stderr
    r = cli("pull", "--ignore-pull-failures")
    assert r.returncode == 0 and f"not pulled: {gone}" in r.stderr, r.stderr
    r = cli("pull", "nosuch", check=False)
    assert r.returncode == 2 and "no such service: nosuch" in r.stderr, r.stderr
    cli("rmi", web)
    r = cli("pull", web)  # a name with a ':' beside a stack file: Docker's pull
    assert r.stdout.startswith(f"{web}: sha256:"), r.stdout


def test_push_of_services_as_compose_takes_them(
        roots: Roots, demo_image: str, registry: RunningRegistry, tmp_path: Path) -> None:
    """`push SERVICE…` (with --include-deps, what they depend on too) pushes those built
    services' images; `--ignore-push-failures` goes on past one that cannot be pushed;
    a service that builds nothing has nothing to push."""
    work = tmp_path / "svc"
    work.mkdir()
    web, db = f"{registry.host}/svc/web:1", f"{registry.host}/svc/db:1"
    (work / "Dockerfile").write_text(f"FROM {DEMO_IMAGE}\n")
    (work / "compose.yaml").write_text(
        "services:\n"
        f"  web: {{build: ., image: '{web}', depends_on: [db]}}\n"
        f"  db: {{build: ., image: '{db}'}}\n"
        "  broken: {build: ., image: '127.0.0.1:9/svc/broken:1'}\n"
        f"  other: {{image: '{DEMO_IMAGE}'}}\n")
    cli = CLI(roots, work)
    for ref in (web, db, "127.0.0.1:9/svc/broken:1"):
        cli("tag", DEMO_IMAGE, ref)
    r = cli("push", "web")
    assert web in r.stdout and db not in r.stdout, r.stdout
    r = cli("push", "--include-deps", "-q", "web")
    assert len(r.stdout.split()) == 2, r.stdout
    r = cli("push", check=False)
    assert r.returncode != 0 and "127.0.0.1:9" in r.stderr, r.stderr
    r = cli("push", "--ignore-push-failures")
    assert r.returncode == 0 and "not pushed: 127.0.0.1:9/svc/broken:1" in r.stderr, r.stderr
    r = cli("push", "other", check=False)
    assert r.returncode == 2 and "nothing to push for other" in r.stderr, r.stderr
    r = cli("push", DEMO_IMAGE, f"{registry.host}/svc/renamed:1")  # Docker's form
    assert r.stdout.startswith(f"{registry.host}/svc/renamed:1: digest:"), r.stdout


def test_build_push_pushes_what_the_build_is_named(
        roots: Roots, demo_image: str, registry: RunningRegistry, tmp_path: Path) -> None:
    work = tmp_path / "bp"
    work.mkdir()
    ref = f"{registry.host}/bp/app:1"
    (work / "Dockerfile").write_text(f"FROM {DEMO_IMAGE}\nRUN echo built > /built\n")
    (work / "compose.yaml").write_text(
        f"services:\n  app: {{build: ., image: '{ref}'}}\n  local: {{build: .}}\n")
    cli = CLI(roots, work)
    r = cli("build", "--push", "-q", "app", STACKD_NO_AUTOSTART="1")
    assert r.stdout.splitlines()[1].startswith("sha256:"), r.stdout  # id, then digest
    cli("rmi", ref)
    assert cli("pull", "-q", ref).stdout.startswith("sha256:")
    r = cli("build", "--push", "local", check=False, STACKD_NO_AUTOSTART="1")
    assert r.returncode == 2 and "has no name to push under" in r.stderr, r.stderr
