"""`stackd system df`, `system prune` and `container prune`, as Docker users clean a host:
what nothing uses goes, what runs (and what it runs on) stays."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from e2e_helpers import DEMO_IMAGE, stack_dir

from stackd.roots import Roots

pytestmark = [pytest.mark.root, pytest.mark.slow]

STACK = f"""\
name: sys
services:
  web:
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [sleep, "1000"]
    stop_signal: SIGKILL
  job:
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [sh, -c, "echo done > /data/x"]
    restart: "no"
    volumes: [/data]
"""


def df(cli: object) -> dict[str, dict[str, int]]:
    rows = json.loads(cli("system", "df", "--format", "json").stdout)  # type: ignore[operator]
    return {r["type"]: r for r in rows}


def test_system_prune_removes_what_nothing_uses_and_keeps_what_runs(
        no_leaks: Roots, demo_image: str, tmp_path: Path) -> None:
    with stack_dir(no_leaks, tmp_path, "sys", STACK) as cli:
        cli("up", "-d")
        cli("wait", "job")
        cli("run", "-d", "--name", "lone", "--network", "none", DEMO_IMAGE, "true")
        deadline = time.monotonic() + 15
        while not any(r["name"] == "lone" and r["state"] == "exited" for r in json.loads(
                cli("container", "ls", "-a", "--format", "json").stdout)):
            assert time.monotonic() < deadline, "lone did not exit"
            time.sleep(0.1)
        cli("network", "create", "spare")
        (tmp_path / "sys" / "img").mkdir()
        (tmp_path / "sys" / "img" / "Dockerfile").write_text(
            f"FROM {DEMO_IMAGE}\nRUN echo unused > /unused\n")
        cli("build", "-q", "-t", "extra/unused:1", "img")
        before = df(cli)
        assert before["Containers"]["total"] == 3 and before["Containers"]["active"] == 1
        assert before["Images"]["total"] >= 2 and before["Images"]["active"] >= 1
        assert before["Local Volumes"]["total"] == 1
        table = cli("system", "df").stdout.splitlines()
        assert table[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], table
        assert [line.split()[0] for line in table[1:]] == ["Images", "Containers", "Local",
                                                           "Build"], table

        info = json.loads(cli("system", "info", "--format", "json").stdout)
        assert info["containers"] == {"total": 3, "running": 1, "paused": 0, "stopped": 2}
        assert info["daemon"]["pid"] == cli.daemon_pid() and info["images"] >= 2
        assert info["state_root"] == str(no_leaks.state) and info["cpus"] >= 1
        text = cli("system", "info").stdout
        assert " Containers: 3\n  Running: 1\n  Paused: 0\n  Stopped: 2\n" in text, text
        assert " Cgroup Version: " in text and " Total Memory: " in text, text

        # It asks first; with no terminal to ask on, it says so and removes nothing.
        r = cli("system", "prune", check=False)
        assert r.returncode == 2 and "add -f" in r.stderr, r
        assert df(cli)["Containers"]["total"] == 3

        out = cli("system", "prune", "-f", "-a", "--volumes").stdout
        assert "Deleted Containers:\nsys-job-1\nlone\n" in out or (
            "Deleted Containers:\nlone\nsys-job-1\n" in out), out
        assert "Deleted Networks:\nspare\n" in out, out
        assert "Deleted Images:\nuntagged: extra/unused:1\ndeleted: " in out, out
        assert "Total reclaimed space:" in out, out
        rows = json.loads(cli("container", "ls", "-a", "--format", "json").stdout)
        assert [r["name"] for r in rows] == ["sys-web-1"], rows
        assert rows[0]["state"] == "running"
        assert cli("network", "ls", "-q").stdout.split() == ["sys_default"]
        assert cli("volume", "ls", "-q").stdout.split() == []
        images = cli("images", "--format", "{{.Repository}}").stdout.split()
        assert "extra/unused" not in images and DEMO_IMAGE.split(":")[0] in images, images
        after = df(cli)
        assert after["Containers"]["total"] == 1 and after["Local Volumes"]["total"] == 0
        # The running one is still served.
        assert cli("exec", "-T", "web", "echo", "up").stdout == "up\n"

        # Nothing left to prune: nothing said, no error.
        assert cli("container", "prune", "-f").stdout == ""
        r = cli("container", "prune", check=False)
        assert r.returncode == 2 and "asks first" in r.stderr, r


def test_a_network_pruned_beside_the_daemon_leaves_no_resolver_after_the_last_down(
        no_leaks: Roots, demo_image: str, tmp_path: Path) -> None:
    """`network prune` works on the store beside a running daemon, whose DNS feed still
    listed the network: its next flush served it again, and the resolver process
    outlived the last `down`."""
    from stackd import detached
    from stackd.netbridge.dnsfiles import DnsPaths

    one = STACK.split("  job:")[0]
    with stack_dir(no_leaks, tmp_path, "one", one) as cli:
        cli("up", "-d")
        cli("run", "--rm", DEMO_IMAGE, "true")  # the daemon makes `run`'s own network
        assert cli("network", "prune").stdout.split() == ["Deleted", "networks:",
                                                          "stackd_default"]
        cli("down")
        lock = DnsPaths(no_leaks.run).lock
        deadline = time.monotonic() + 15
        while detached.held(lock):
            assert time.monotonic() < deadline, "the resolver outlived the last network"
            time.sleep(0.1)
