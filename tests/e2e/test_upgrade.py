"""An upgrade as docs/operating.md tells it: the stackd of an earlier commit runs a stack,
its daemon is stopped, the new one starts. The runtime monitor outlives the daemon, so
the new daemon finds the old monitor: it refused every container spec of the new
stackd (each field it did not know, there at its default), and the new config hash
recreated every container that had a volume or a port."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import CLI, stack_dir
from support.gitops import wait_for
from support.psrows import ps_rows

from stackd.roots import Roots

pytestmark = [pytest.mark.root, pytest.mark.slow]

# stackd as it was before Mount's uid, gid, noexec, subpath and seed_plain, and before
# the monitor answered with its schema (the sixteenth session's first commit's parent).
OLD = "b4a4f6e6660c64dd558c42e3ee645c29ca53a5b4"
IMAGE = "image: stackd-demo/busybox:latest\n    pull_policy: never\n"
BEFORE = ("name: upgraded\nservices:\n"
          f"  db:\n    {IMAGE}    command: [sleep, '1000']\n    stop_signal: SIGKILL\n"
          "    volumes: [data:/data]\n    ports: ['127.0.0.1:18733:80']\n"
          "volumes:\n  data: {}\n")


@pytest.fixture
def old_stackd(tmp_path: Path) -> Path:
    """The stackd package of commit OLD, unpacked, to run with PYTHONPATH."""
    repo = Path(__file__).resolve().parents[2]
    archive = subprocess.run(["git", "-C", str(repo), "archive", OLD, "stackd"],
                             capture_output=True)
    if archive.returncode != 0:
        pytest.skip(f"commit {OLD} is not in this clone's history: "
                    f"{archive.stderr.decode().strip()}")
    out = tmp_path / "old-stackd"
    out.mkdir()
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive.stdout, check=True)
    return out


@pytest.fixture
def stack(no_leaks: Roots, demo_image: str, tmp_path: Path) -> Iterator[CLI]:
    with stack_dir(no_leaks, tmp_path, "upgraded", BEFORE) as cli:
        yield cli


def test_the_new_daemon_replaces_the_old_monitor_and_recreates_nothing(
        stack: CLI, old_stackd: Path) -> None:
    old = {"PYTHONPATH": str(old_stackd)}
    stack("up", "-d", **old)
    (before,) = ps_rows(stack("ps", "--format", "json", **old).stdout)
    old_monitor = int((stack.roots.run / "monitor.pid").read_text())
    stack("daemon", "stop", **old)

    # The new stackd: the same stack, and a service using what only it knows.
    (stack.cwd / "compose.yaml").write_text(BEFORE.replace("volumes:\n  data", (
        f"  scratch:\n    {IMAGE}    command: [sleep, '1000']\n    stop_signal: SIGKILL\n"
        "    tmpfs: ['/t:uid=5']\nvolumes:\n  data")))
    stack("up", "-d")
    rows = {r["service"]: r for r in ps_rows(stack("ps", "--format", "json").stdout)}
    assert rows["db"]["id"] == before["id"] and rows["db"]["pid"] == before["pid"]
    assert stack("exec", "-T", "scratch", "stat", "-c", "%u", "/t").stdout.strip() == "5"
    assert int((stack.roots.run / "monitor.pid").read_text()) != old_monitor
    said = stack("events", "--no-follow", "--since", "0", "--all-projects").stdout
    assert f"the runtime monitor (pid {old_monitor}) of the stackd from before the " \
           "upgrade was replaced" in said


# A label the old stackd took and this one refuses in a stack file (bfb55e6).
REFUSED_NOW = ("name: ratcheted\nservices:\n"
               f"  web:\n    {IMAGE}    command: [sleep, '1000']\n    stop_signal: SIGKILL\n"
               "    restart: always\n    labels: {io.stackd.note: kept}\n")


def test_a_stack_the_old_stackd_took_is_kept_and_healed_though_this_one_refuses_it(
        no_leaks: Roots, demo_image: str, tmp_path: Path, old_stackd: Path) -> None:
    old = {"PYTHONPATH": str(old_stackd)}
    with stack_dir(no_leaks, tmp_path, "ratcheted", REFUSED_NOW) as cli:
        cli("up", "-d", **old)
        cli("daemon", "stop", **old)

        (before,) = ps_rows(cli("ps", "--format", "json").stdout)
        os.kill(before["pid"], signal.SIGKILL)
        # The new daemon restored the stored revision and heals it, as the old one did.
        wait_for("web restarted", lambda: [r for r in ps_rows(
            cli("ps", "--format", "json").stdout)
            if r["state"] == "running" and r["pid"] != before["pid"]])
        said = cli("events", "--no-follow", "--since", "0").stdout
        assert ("was applied by an earlier stackd and holds what this one refuses in a "
                "new `up`; it keeps running as applied") in said
        assert "label 'io.stackd.note': the io.stackd. prefix is stackd's own" in said
        assert "validation error" not in said

        # A new `up` of the same file is refused, naming the label and changing nothing.
        refused = cli("up", "-d", check=False)
        assert refused.returncode != 0
        assert "label 'io.stackd.note'" in refused.stderr
