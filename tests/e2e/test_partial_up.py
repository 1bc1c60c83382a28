"""`up SERVICE` as Compose runs it: only what is named and what it needs is pulled, so
another service's unreachable image does not stop it; and a bind mount's missing
source directory is made, as Docker's `-v` makes it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import CLI, DEMO_IMAGE, stack_dir
from support.psrows import ps_rows

from stackd.roots import Roots

pytestmark = [pytest.mark.root, pytest.mark.slow]

STACK = f"""\
name: partial
services:
  app:
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [sh, -c, "ls -d /data && sleep 1000"]
    stop_signal: SIGKILL
    depends_on: [helper]
    volumes: ["./made/by/up:/data"]
  helper:
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [sleep, "1000"]
    stop_signal: SIGKILL
  remote:
    image: 127.0.0.1:1/nowhere/image:1
    command: [sleep, "1000"]
  strict:
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [sleep, "1000"]
    volumes:
      - type: bind
        source: ./not/made
        target: /data
        bind: {{create_host_path: false}}
"""


@pytest.fixture
def stack(no_leaks: Roots, demo_image: str, tmp_path: Path) -> Iterator[CLI]:
    with stack_dir(no_leaks, tmp_path, "partial", STACK) as cli:
        yield cli


def services(cli: CLI) -> dict[str, str]:
    return {r["service"]: r["state"]
            for r in ps_rows(cli("ps", "-a", "--format", "json").stdout)}


def test_up_of_a_service_pulls_only_what_it_needs_and_makes_its_bind_source(
        stack: CLI) -> None:
    stack("up", "-d", "app")  # was: "registry 127.0.0.1:1 could not be reached"
    assert services(stack) == {"app": "running", "helper": "running"}
    made = stack.cwd / "made" / "by" / "up"
    assert made.is_dir() and made.stat().st_mode & 0o777 == 0o755
    assert "/data" in stack("logs", "app").stdout

    # The whole stack still needs the image: said, and what runs is left running.
    r = stack("up", "-d", check=False)
    assert r.returncode == 1 and "registry 127.0.0.1:1 could not be reached" in r.stderr
    assert services(stack)["app"] == "running"


def test_a_bind_that_opts_out_of_creating_its_source_is_refused(stack: CLI) -> None:
    r = stack("up", "-d", "strict", check=False)
    assert r.returncode != 0
    assert "not/made does not exist (for /data)" in r.stderr, r.stderr
    assert not (stack.cwd / "not").exists()
