"""Lifecycle hooks end to end: `post_start` runs in the container once it started (its
user, working_dir and environment honoured) and a failing one fails `up`; `pre_stop`
runs before the stop signal, on `stop` as on `down`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import CLI, DEMO_IMAGE, torn_down

from stackd.roots import Roots

pytestmark = [pytest.mark.root, pytest.mark.slow]

STACK = f"""\
name: hooked
services:
  app:
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [sleep, "1000"]
    stop_signal: SIGKILL
    volumes: [data:/data]
    post_start:
      - command: sh -c 'echo "$$GREETING from $(pwd)" > /data/started'
        working_dir: /tmp
        environment:
          GREETING: hello
      - command: [sh, -c, 'test "$(id -u)" = 1234']
        user: "1234"
    pre_stop:
      - command: [sh, -c, "echo bye >> /data/stopped"]
volumes:
  data: {{}}
"""


@pytest.fixture
def cli(no_leaks: Roots, demo_image: str, tmp_path: Path) -> Iterator[CLI]:
    work = tmp_path / "hooked"
    work.mkdir()
    (work / "compose.yaml").write_text(STACK)
    with torn_down(CLI(no_leaks, work)) as cli:
        yield cli


def test_post_start_runs_as_written_and_pre_stop_runs_before_the_stop(cli: CLI) -> None:
    cli("up", "-d")
    (info,) = json.loads(cli("volume", "inspect", "hooked_data").stdout)
    data = Path(info["mountpoint"])
    assert (data / "started").read_text() == "hello from /tmp\n"
    assert not (data / "stopped").exists()

    cli("stop", "app")
    assert (data / "stopped").read_text() == "bye\n"
    cli("start", "app")  # post_start again, as compose runs it on every start
    assert (data / "started").read_text() == "hello from /tmp\n"

    (cli.cwd / "compose.override.yaml").write_text(
        "services:\n  app:\n    post_start: !override\n"
        "      - command: [sh, -c, 'echo broken >&2; exit 3']\n")
    r = cli("up", "-d", check=False)
    assert r.returncode != 0, r
    assert "post_start hook 'sh -c echo broken >&2; exit 3' exited with status 3: broken" \
        in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    # The recreate ran the old container's pre_stop before stopping it.
    assert (data / "stopped").read_text() == "bye\nbye\n"

