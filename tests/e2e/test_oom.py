"""A container the kernel's OOM killer takes (its memory limit reached) is reported as
an `oom` event, then `die`, and `ps -a` shows `Exited (137, OOM killed)` (issue #13,
item 7). The host limits memory through cgroup v1 or v2; both record the kill."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import CLI, torn_down
from support.psrows import ps_rows

from stackd.roots import Roots

pytestmark = pytest.mark.root

STACK = """\
services:
  hog:
    image: stackd-demo/busybox:latest
    restart: "no"
    mem_limit: 8m
    memswap_limit: 8m
    # dd's 64 MiB buffer, filled from /dev/zero, is far over the 8 MiB limit.
    command: ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=4"]
  calm:
    image: stackd-demo/busybox:latest
    restart: "no"
    command: ["sh", "-c", "exit 3"]
"""


@pytest.fixture
def cli(no_leaks: Roots, demo_image: str, tmp_path: Path) -> Iterator[CLI]:
    work = tmp_path / "project"
    work.mkdir()
    with torn_down(CLI(no_leaks, work)) as c:
        yield c


def test_an_oom_kill_is_an_event_and_shows_in_ps(cli: CLI) -> None:
    (cli.cwd / "compose.yaml").write_text(STACK)
    cli("up", "-d")
    deadline = time.monotonic() + 60
    while True:
        rows = {r["service"]: r for r in ps_rows(cli("ps", "-a", "--format", "json").stdout)}
        if all(r["state"] == "exited" for r in rows.values()) and len(rows) == 2:
            break
        assert time.monotonic() < deadline, rows
        time.sleep(0.5)
    assert (rows["hog"]["exit_code"], rows["hog"]["oom_killed"]) == (137, True)
    assert (rows["calm"]["exit_code"], rows["calm"]["oom_killed"]) == (3, False)
    table = cli("ps", "-a").stdout
    hog_line = next(line for line in table.splitlines() if "project-hog-1" in line)
    calm_line = next(line for line in table.splitlines() if "project-calm-1" in line)
    assert "Exited (137, OOM killed)" in hog_line
    assert "Exited (3)" in calm_line and "OOM" not in calm_line

    events = [json.loads(line) for line in
              cli("events", "--no-follow", "--json").stdout.splitlines() if line.strip()]
    hog = [e["type"] for e in events if (e.get("container") or "").startswith("project-hog-1")
           and e["type"] in ("oom", "die")]
    assert hog[:2] == ["oom", "die"], events
    assert not [e for e in events if e["type"] == "oom"
                and (e.get("container") or "").startswith("project-calm-1")]
