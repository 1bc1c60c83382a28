"""What a container keeps across a restart (docs/reconciler.md, "Restarts"): a user's
`restart`, `stop` then `start`, or an `up` of a stopped container keep its writable
layer, as Docker's do — Compose users install a tool with `exec` and restart; a
`develop.watch` sync+restart relies on it. A heal after a crash starts from the image
again (Kubernetes' rule: a crashed container's files are not trusted), and so does a
`--force-recreate`."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import CLI, DEMO_IMAGE, stack_dir
from support.psrows import ps_rows

from stackd.roots import Roots

pytestmark = pytest.mark.root

STACK = f"""\
name: layer
services:
  web:
    image: {DEMO_IMAGE}
    command: [sleep, '1000']
    stop_signal: SIGKILL
    restart: always
"""


@pytest.fixture
def cli(no_leaks: Roots, demo_image: str, tmp_path: Path) -> Iterator[CLI]:
    with stack_dir(no_leaks, tmp_path, "layer", STACK) as c:
        yield c


def mark(cli: CLI) -> None:
    cli("exec", "-T", "web", "sh", "-c", "echo kept > /written-at-run-time")


def marked(cli: CLI) -> bool:
    return cli("exec", "-T", "web", "test", "-e", "/written-at-run-time",
               check=False).returncode == 0


def pid(cli: CLI) -> int:
    rows = ps_rows(cli("ps", "--format", "json").stdout)
    return int(next(r["pid"] for r in rows if r["service"] == "web"))


def test_a_users_restart_and_start_keep_the_layer_a_heal_does_not(cli: CLI) -> None:
    cli("up", "-d")
    mark(cli)
    cli("restart", "web")
    assert marked(cli), "restart dropped the container's writable layer"
    cli("stop", "web")
    cli("start", "web")
    assert marked(cli), "stop + start dropped the container's writable layer"
    cli("stop", "web")
    cli("up", "-d")
    assert marked(cli), "up of a stopped container dropped its writable layer"

    before = pid(cli)
    os.kill(before, signal.SIGKILL)  # a crash: the restart policy heals it
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        rows = ps_rows(cli("ps", "--format", "json").stdout)
        if any(r["state"] == "running" and r["pid"] not in (None, before) for r in rows):
            break
        time.sleep(0.1)
    assert not marked(cli), "a heal kept what the crashed run wrote"

    mark(cli)
    cli("up", "-d", "--force-recreate")
    assert not marked(cli), "--force-recreate kept the old container's layer"
