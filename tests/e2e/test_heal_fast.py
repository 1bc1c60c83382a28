"""Heal after `kill -9` (issue #20, heal <= 0.15 s): the restart policy's first restart
is immediate, and the restart joins the container's network namespace again — the
same namespace, address and DNS name — instead of detaching and attaching it anew.
What was removed from outside is still made afresh (test_webapp's netns/veth tests)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import CLI, torn_down
from support.psrows import ps_rows

from stackd.roots import Roots

pytestmark = pytest.mark.root

STACK = """\
name: heal
services:
  web:
    image: stackd-demo/busybox:latest
    pull_policy: never
    command: [sleep, '1000']
    stop_signal: SIGKILL
    restart: always
  probe:
    image: stackd-demo/busybox:latest
    pull_policy: never
    command: [sleep, '1000']
    stop_signal: SIGKILL
"""


@pytest.fixture
def heal(no_leaks: Roots, demo_image: str, tmp_path: Path) -> Iterator[CLI]:
    work = tmp_path / "heal"
    work.mkdir()
    (work / "compose.yaml").write_text(STACK)
    with torn_down(CLI(no_leaks, work)) as cli:
        yield cli


def web(cli: CLI) -> dict:
    rows = ps_rows(cli("ps", "--format", "json").stdout)
    return next((r for r in rows if r["service"] == "web"), {})


def address(cli: CLI, service: str) -> str:
    out = cli("exec", service, "ip", "-4", "-o", "addr", "show", "eth0").stdout
    return out.split(" inet ")[1].split("/")[0]


def test_a_killed_container_is_back_at_once_in_its_own_network_namespace(heal: CLI) -> None:
    heal("up", "-d")
    before = web(heal)
    netns = os.stat(f"/proc/{before['pid']}/ns/net").st_ino
    ip = address(heal, "web")

    t0 = time.monotonic()
    os.kill(before["pid"], signal.SIGKILL)
    deadline = t0 + 20
    while time.monotonic() < deadline:
        now = web(heal)
        if now.get("state") == "running" and now.get("pid") not in (None, before["pid"]):
            break
        time.sleep(0.05)
    else:
        raise AssertionError("web was not restarted within 20 s")
    print(f"kill -9 to running again: {time.monotonic() - t0:.3f} s")

    assert now["id"] == before["id"]
    # The namespace the first run had, with its address: nothing was made again.
    assert os.stat(f"/proc/{now['pid']}/ns/net").st_ino == netns
    assert address(heal, "web") == ip
    # Its DNS name answers from the other service (readiness was set again).
    out = heal("exec", "probe", "nslookup", "web").stdout
    assert ip in out
    events = [json.loads(x) for x in heal("events", "--no-follow", "--since", "0",
                                          "--json").stdout.splitlines()]
    restarts = [e["message"] for e in events
                if e["type"] == "restart" and e.get("container") == "heal-web-1"]
    assert restarts == ["restart 1 after 0s"]
