"""Profiles as Compose users run them: a service named on the command line comes up
with its profiles, and a service its profiles leave out is neither an orphan nor
removed by --remove-orphans — also after the daemon restarts and resyncs from the
revision alone. A service that does not exist is an error, not an up to date stack."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import CLI, DEMO_IMAGE, stack_dir, stop_daemon
from support.psrows import ps_rows

from stackd.roots import Roots

pytestmark = [pytest.mark.root, pytest.mark.slow]

STACK = f"""\
name: prof
services:
  app:
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [sleep, "1000"]
    stop_signal: SIGKILL
  tools:
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [sleep, "1000"]
    stop_signal: SIGKILL
    profiles: [tools]
"""


@pytest.fixture
def stack(no_leaks: Roots, demo_image: str, tmp_path: Path) -> Iterator[CLI]:
    with stack_dir(no_leaks, tmp_path, "prof", STACK) as cli:
        yield cli


def running(cli: CLI) -> dict[str, str]:
    return {r["service"]: r["id"] for r in ps_rows(cli("ps", "--format", "json").stdout)}


def test_a_named_service_comes_up_with_its_profile_and_is_never_an_orphan(
        stack: CLI) -> None:
    stack("up", "-d")
    assert set(running(stack)) == {"app"}
    stack("up", "-d", "tools")  # was: "up to date, nothing to do"
    tools = running(stack)["tools"]

    for args in (("up", "-d"), ("up", "-d", "--remove-orphans")):
        r = stack(*args)
        assert "orphan" not in r.stderr, r.stderr
        assert running(stack).get("tools") == tools, args

    # A resync from the revision alone (no files read) knows it too.
    stop_daemon(stack.roots)
    assert running(stack).get("tools") == tools  # the next command starts the daemon
    time.sleep(1.5)
    assert running(stack).get("tools") == tools

    assert stack("run", "--rm", "tools", "echo", "ran").stdout.strip() == "ran"


def test_a_service_that_does_not_exist_is_refused_and_nothing_changes(stack: CLI) -> None:
    for args in (("up", "-d", "nosuch"), ("plan", "nosuch"), ("create", "app", "nosuch")):
        r = stack(*args, check=False)
        assert r.returncode == 2, (args, r.stdout, r.stderr)  # a usage error
        assert "no such service: nosuch" in r.stderr, r.stderr
        assert "services in this stack: app" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    assert running(stack) == {}
    assert "prof" not in stack("ls", "-a").stdout  # no revision was recorded
