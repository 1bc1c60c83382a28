"""`stackd create` (issue #15): Compose's `create` — the stack's containers are made
and none is started, and they stay created through later passes until `start`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import CLI, DEMO_IMAGE, torn_down
from support.psrows import ps_rows

from stackd.roots import Roots

pytestmark = pytest.mark.root

STACK = f"""\
name: made
services:
  db:
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [sleep, "1000"]
    stop_signal: SIGKILL
  web:
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [sleep, "1000"]
    stop_signal: SIGKILL
    depends_on: [db]
"""


@pytest.fixture
def cli(no_leaks: Roots, demo_image: str, tmp_path: Path) -> Iterator[CLI]:
    work = tmp_path / "made"
    work.mkdir()
    (work / "compose.yaml").write_text(STACK)
    with torn_down(CLI(no_leaks, work)) as c:
        yield c


def states(cli: CLI) -> dict[str, str]:
    return {r["service"]: r["state"]
            for r in ps_rows(cli("ps", "-a", "--format", "json").stdout)}


def test_create_makes_the_containers_and_start_or_up_runs_them(cli: CLI) -> None:
    cli("create")
    assert states(cli) == {"db": "created", "web": "created"}
    assert ps_rows(cli("ps", "--format", "json").stdout) == []  # nothing runs
    # A later pass of the stack (another create) starts none of them either.
    cli("create")
    assert states(cli) == {"db": "created", "web": "created"}
    cli("start", "db")  # `start` of one service: its container only
    assert states(cli) == {"db": "running", "web": "created"}
    cli("up", "-d")  # `up` clears the rest
    assert states(cli) == {"db": "running", "web": "running"}
