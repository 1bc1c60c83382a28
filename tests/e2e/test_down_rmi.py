"""`stackd down --rmi local|all` with the real daemon: which images go, and that one
another running stack still uses stays, with a warning naming who uses it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import CLI, DEMO_IMAGE, down_and_stop
from support.psrows import ps_rows

from stackd.roots import Roots

pytestmark = [pytest.mark.root, pytest.mark.slow]

STACK = f"""\
name: rmi
services:
  built:
    build: ./app
    command: [sh, -c, 'cat /greeting; exec sleep 1000']
    stop_signal: SIGKILL
  plain:
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [sleep, "1000"]
    stop_signal: SIGKILL
"""

OTHER = f"""\
name: other
services:
  neighbour:
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [sleep, "1000"]
    stop_signal: SIGKILL
"""


@pytest.fixture
def stacks(no_leaks: Roots, demo_image: str, tmp_path: Path) -> Iterator[tuple[CLI, CLI]]:
    """Project `rmi` (a built service and one on the imported image) and project
    `other` (on the imported image only); both torn down after."""
    work, other = tmp_path / "rmi", tmp_path / "other"
    (work / "app").mkdir(parents=True)
    other.mkdir()
    (work / "app" / "greeting").write_text("built by stackd\n")
    (work / "app" / "Dockerfile").write_text(f"FROM {DEMO_IMAGE}\nCOPY greeting /greeting\n")
    (work / "compose.yaml").write_text(STACK)
    (other / "compose.yaml").write_text(OTHER)
    cli, cli_other = CLI(no_leaks, work), CLI(no_leaks, other)
    try:
        yield cli, cli_other
    finally:
        cli_other("down", check=False)
        left = down_and_stop(cli)
    assert left == [], "down -v left network devices behind"


def images(cli: CLI) -> list[str]:
    """The store's names, short: `rmi-built:latest`, `stackd-demo/busybox:latest`."""
    rows = json.loads(cli("images", "--format", "json").stdout)
    return sorted(ref.removeprefix("docker.io/").removeprefix("library/")
                  for row in rows for ref in row["references"])


def test_down_rmi_local_then_all_keeps_what_another_stack_runs(
        stacks: tuple[CLI, CLI]) -> None:
    cli, other = stacks
    cli("up", "-d")
    assert images(cli) == ["rmi-built:latest", DEMO_IMAGE]

    # local: only the image built for the service without `image:`.
    cli("down", "--rmi", "local")
    assert images(cli) == [DEMO_IMAGE]
    assert ps_rows(cli("ps", "-a", "--format", "json").stdout) == []

    # all, while `other` runs on the imported image: that one stays, with a warning.
    cli("up", "-d")
    other("up", "-d")
    r = cli("down", "--rmi", "all")
    assert (f"warning: image {DEMO_IMAGE} kept: still used by other-neighbour-1 "
            "(stack other)") in r.stderr, r.stderr
    assert images(cli) == [DEMO_IMAGE]
    assert [row["name"] for row in ps_rows(other("ps", "--format", "json").stdout)] == [
        "other-neighbour-1"]

    # all, with nobody else on it: both go; a second name of the image stays (as rmi).
    cli("up", "-d")
    other("down")
    cli("tag", DEMO_IMAGE, "keep/me:1")
    cli("down", "--rmi", "all")
    assert images(cli) == ["keep/me:1"]
