"""Compose's `build.secrets` through `up` (issue #15): the daemon builds the service with
the top-level secret's file mounted for `RUN --mount=type=secret`, and the running
container has no trace of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import CLI, DEMO_IMAGE, torn_down

from stackd.roots import Roots

pytestmark = pytest.mark.root


@pytest.fixture
def cli(no_leaks: Roots, demo_image: str, tmp_path: Path) -> Iterator[CLI]:
    work = tmp_path / "sec"
    work.mkdir()
    with torn_down(CLI(no_leaks, work)) as c:
        yield c


def test_up_builds_with_a_build_secret_that_stays_out_of_the_image(cli: CLI) -> None:
    (cli.cwd / "token.txt").write_text("tok-93ab")
    (cli.cwd / "Dockerfile").write_text(
        f"FROM {DEMO_IMAGE}\n"
        "RUN --mount=type=secret,id=api,required=true "
        "wc -c < /run/secrets/api > /token-size\n")
    (cli.cwd / "compose.yaml").write_text(
        "name: sec\nservices:\n  app:\n    build:\n      context: .\n"
        "      secrets: [{source: token, target: api}]\n"
        "    command: [sleep, '1000']\n    stop_signal: SIGKILL\n"
        "secrets:\n  token: {file: ./token.txt}\n")
    cli("up", "-d")
    assert cli("exec", "-T", "app", "cat", "/token-size").stdout.strip() == "8"
    # Not even the mount point: build/secrets.py leaves it out of the layer.
    r = cli("exec", "-T", "app", "sh", "-c", "test ! -e /run/secrets/api && echo clean")
    assert r.stdout.strip() == "clean"


def test_up_builds_a_dockerfile_as_docker_init_writes_it(cli: CLI) -> None:
    """A cache mount for the package manager, the lock file bound in from the context,
    a heredoc: `up --build` builds it, and a second build finds the cache warm."""
    (cli.cwd / "requirements.txt").write_text("flask==3.0\n")
    (cli.cwd / "Dockerfile").write_text(
        "# syntax=docker/dockerfile:1\n"
        f"ARG BASE={DEMO_IMAGE}\n"
        "FROM ${BASE} AS base\n"
        "WORKDIR /app\n"
        "ARG TARGETARCH\n"
        "RUN --mount=type=cache,target=/root/.cache/pip \\\n"
        "    --mount=type=bind,source=requirements.txt,target=requirements.txt \\\n"
        "    <<EOF\n"
        "set -e\n"
        "ls /root/.cache/pip | wc -l > /app/cached-before\n"
        "cp requirements.txt /root/.cache/pip/\n"
        "cat requirements.txt > /app/installed\n"
        "echo \"$TARGETARCH\" > /app/arch\n"
        "EOF\n"
        "COPY <<EOF /app/settings.ini\n"
        "arch=$TARGETARCH\n"
        "EOF\n")
    (cli.cwd / "compose.yaml").write_text(
        "name: sec\nservices:\n  app:\n    build: .\n"
        "    command: [sleep, '1000']\n    stop_signal: SIGKILL\n")
    shown = cli("up", "-d", "--build")
    # A build is not silence: up shows its steps (resource `image REF`).
    assert "image sec-app" in shown.stderr and "build: step 4/5: RUN" in shown.stderr, \
        shown.stderr
    out = cli("exec", "-T", "app", "sh", "-c",
              "cat cached-before installed settings.ini; test ! -e requirements.txt && "
              "test ! -e /root/.cache && echo clean").stdout.split()
    arch = cli("exec", "-T", "app", "cat", "arch").stdout.strip()
    assert arch and out == ["0", "flask==3.0", f"arch={arch}", "clean"]
    (cli.cwd / "requirements.txt").write_text("flask==3.1\n")  # reruns the step
    cli("up", "-d", "--build")
    out = cli("exec", "-T", "app", "cat", "cached-before", "installed").stdout.split()
    assert out == ["1", "flask==3.1"]


def test_up_and_build_read_a_named_context_beside_the_main_one(cli: CLI) -> None:
    """A monorepo's service that copies a shared directory from outside its context:
    compose's build.additional_contexts through up, and `build --build-context`."""
    shared = cli.cwd.parent / "shared"
    shared.mkdir()
    (shared / "greeting").write_text("from shared\n")
    app = cli.cwd / "app"
    app.mkdir()
    (app / "Dockerfile").write_text(
        f"FROM {DEMO_IMAGE}\nCOPY --from=shared greeting /greeting\n")
    (cli.cwd / "compose.yaml").write_text(
        "name: sec\nservices:\n  app:\n    build:\n      context: ./app\n"
        "      additional_contexts: {shared: ../shared}\n"
        "    command: [sleep, '1000']\n    stop_signal: SIGKILL\n")
    cli("up", "-d")
    assert cli("exec", "-T", "app", "cat", "/greeting").stdout == "from shared\n"
    (shared / "greeting").write_text("given on the command line\n")
    built = cli("build", "./app", "-t", "sec-cli:1", "--build-context", f"shared={shared}")
    assert built.returncode == 0
    out = cli("run", "--rm", "sec-cli:1", "cat", "/greeting")
    assert out.stdout == "given on the command line\n"
    bad = cli("build", "./app", "--build-context", "shared", check=False)
    assert bad.returncode == 2 and "is not NAME=VALUE" in bad.stderr
