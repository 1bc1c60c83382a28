"""Applied revisions as desired state, with the real CLI and daemon.

A stack's desired state is what `up` applied (its revision), not its files as they
are now: a resync or a daemon restart converges to the revision, `plan` shows what
the files on disk would change, and only the next `up` rolls that out. Revision
numbers keep growing across `down`; one-shot options are honoured once.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import CLI, DEMO_IMAGE, stop_daemon, torn_down
from support.psrows import ps_rows

from stackd.cli.client import Client
from stackd.daemon.paths import log_path
from stackd.roots import Roots

RETAGGED = "stackd-demo/retag:latest"

STACK = f"""\
name: revs
services:
  conf:
    image: {DEMO_IMAGE}
    command: ["sleep", "3600"]
    stop_signal: SIGKILL
    configs:
      - source: appconf
        target: /etc/app.conf
    secrets: [pw]
  envd:
    image: {DEMO_IMAGE}
    command: ["sleep", "3600"]
    stop_signal: SIGKILL
    env_file: app.env
  tagged:
    image: {RETAGGED}
    command: ["sleep", "3600"]
    stop_signal: SIGKILL
  steady:
    image: {DEMO_IMAGE}
    command: ["sleep", "3600"]
    stop_signal: SIGKILL
configs:
  appconf:
    file: ./app.conf
secrets:
  pw:
    file: ./pw.txt
"""


@pytest.fixture
def project(no_leaks: Roots, demo_image: str, tmp_path: Path) -> Iterator[CLI]:
    """A project dir with STACK, its config and env file, and a second image to tag."""
    from stackd.images import ImageStore
    from stackd.images.models import ImageConfig

    work = tmp_path / "revs"
    work.mkdir()
    (work / "compose.yaml").write_text(STACK)
    (work / "app.conf").write_text("version one\n")
    (work / "app.env").write_text("GREETING=one\n")
    (work / "pw.txt").write_text("hunter2-secret\n")
    store = ImageStore(no_leaks)
    store.tag(demo_image, RETAGGED)
    # Same files, another config: another digest for `tag` to move RETAGGED to.
    store.import_rootfs(tmp_path / "busybox.tar", ref="stackd-demo/retag:v2",
                        config=ImageConfig(env=("VARIANT=2",)))
    with torn_down(CLI(no_leaks, work)) as cli:
        yield cli


def start_daemon(cli: CLI, resync: float) -> subprocess.Popen[bytes]:
    """A daemon with a short resync period (the CLI's on-demand one uses 30 s)."""
    log = log_path(cli.roots)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "stackd", "daemon", "--resync",
                                 str(resync)], env=cli.env(), cwd="/", stdout=out,
                                stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while cli("daemon", "status", check=False).returncode != 0:
        assert proc.poll() is None, f"the daemon exited: {log.read_text()[-2000:]}"
        assert time.monotonic() < deadline, "the daemon did not answer"
        time.sleep(0.1)
    return proc


def reconciles(roots: Roots, project: str) -> int:
    with Client(roots, autostart=False) as c:
        for s in c.get("/v1/stacks"):
            if s["project"] == project:
                return int(s["reconciles"])
    return 0


def wait_reconciles(roots: Roots, project: str, more_than: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while reconciles(roots, project) <= more_than:
        assert time.monotonic() < deadline, f"no reconcile of {project} within {timeout}s"
        time.sleep(0.1)


def containers(cli: CLI) -> dict[str, tuple[str, float, int]]:
    """service → (container id, start time, pid) of its running container."""
    rows = ps_rows(cli("ps", "--format", "json").stdout)
    return {r["service"]: (r["id"], r["started_at"], r["pid"]) for r in rows
            if r["state"] == "running"}


def history(cli: CLI, *args: str) -> list[dict[str, Any]]:
    return list(json.loads(cli("history", *args, "--format", "json").stdout))


def test_a_resync_keeps_the_applied_revision_until_up(project: CLI) -> None:
    cli = project
    start_daemon(cli, resync=0.3)
    cli("up", "-d")
    before = containers(cli)
    assert set(before) == {"conf", "envd", "tagged", "steady"}
    assert cli("plan").stdout.strip() == "revs: up to date, nothing to do"
    assert cli("exec", "conf", "cat", "/run/secrets/pw").stdout == "hunter2-secret\n"
    # The revision keeps the secret as a root-only blob, never in the database.
    blobs = cli.roots.state / "revisions"
    assert stat.S_IMODE(blobs.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in blobs.iterdir()} == {0o600}
    assert any(p.read_bytes() == b"hunter2-secret\n" for p in blobs.iterdir())
    for db in cli.roots.state.glob("stackd.db*"):
        assert b"hunter2-secret" not in db.read_bytes(), db

    (cli.cwd / "app.conf").write_text("version two\n")
    (cli.cwd / "app.env").write_text("GREETING=two\n")
    cli("tag", "stackd-demo/retag:v2", RETAGGED)
    # Several resyncs, and a daemon restart (which loads every stack afresh).
    wait_reconciles(cli.roots, "revs", reconciles(cli.roots, "revs") + 3)
    stop_daemon(cli.roots)
    start_daemon(cli, resync=0.3)
    wait_reconciles(cli.roots, "revs", 2)

    assert containers(cli) == before
    assert cli("exec", "conf", "cat", "/etc/app.conf").stdout == "version one\n"
    assert cli("exec", "envd", "sh", "-c", "echo $GREETING").stdout == "one\n"

    plan = cli("plan").stdout
    recreated = sorted(line.split("-", 1)[0] for line in plan.splitlines()
                       if ": recreate" in line)
    assert recreated == ["conf", "envd", "tagged"], plan
    assert "since the applied revision 1:" in plan
    assert f"config {cli.cwd / 'app.conf'}: changed" in plan
    assert f"env {cli.cwd / 'app.env'}: changed" in plan
    assert f"image {RETAGGED}: sha256:" in plan
    assert containers(cli) == before  # plan changed nothing

    cli("up", "-d")
    after = containers(cli)
    assert after["steady"] == before["steady"]
    assert {s for s in before if after[s][0] != before[s][0]} == {"conf", "envd", "tagged"}
    assert cli("exec", "conf", "cat", "/etc/app.conf").stdout == "version two\n"
    assert cli("exec", "envd", "sh", "-c", "echo $GREETING").stdout == "two\n"

    rows = history(cli)
    assert [(r["number"], r["cause"], r["outcome"]) for r in rows] == [
        (1, "up", "done"), (2, "up", "done")]
    assert rows[1]["changed"] == ["conf", "envd", "tagged"]
    assert [r["changed"] for r in history(cli, "steady")] == [["steady"], []]
    table = cli("history", "conf").stdout.splitlines()
    assert table[0].split() == ["REVISION", "CREATED", "CAUSE", "OUTCOME", "CONF", "CHANGED"]
    assert [line.split()[-1] for line in table[1:]] == ["yes", "yes"]


def test_a_daemon_restart_does_not_force_recreate_again(project: CLI) -> None:
    cli = project
    cli("up", "-d")
    cli("up", "-d", "--force-recreate")
    before = containers(cli)
    stop_daemon(cli.roots)
    start_daemon(cli, resync=0.3)
    wait_reconciles(cli.roots, "revs", 2)  # the start's reconcile and a resync
    assert containers(cli) == before


def test_up_right_after_down_waits_for_the_new_containers(project: CLI) -> None:
    cli = project
    cli("up", "-d")
    for wait in ([], ["--wait"], []):
        cli("down")
        assert containers(cli) == {}
        r = cli("up", "-d", *wait)
        assert "nothing to do" not in r.stderr
        assert set(containers(cli)) == {"conf", "envd", "tagged", "steady"}, r.stderr
    rows = history(cli)
    assert [(r["number"], r["cause"]) for r in rows] == [
        (1, "up"), (2, "down"), (3, "up"), (4, "down"), (5, "up"), (6, "down"), (7, "up")]
    assert rows[-1]["changed"] == ["conf", "envd", "steady", "tagged"]
    r = cli("history", "nosuch", check=False)
    assert r.returncode == 1
    assert "no service 'nosuch' in the kept revisions of revs" in r.stderr
    assert "Traceback" not in r.stderr


def test_an_image_built_always_is_built_once_per_revision(project: CLI) -> None:
    """`pull_policy: build` builds at `up`; the resyncs run the revision's image."""
    cli = project
    (cli.cwd / "Dockerfile").write_text(f"FROM {DEMO_IMAGE}\nCOPY hello.txt /hello.txt\n")
    (cli.cwd / "hello.txt").write_text("built one\n")
    (cli.cwd / "compose.yaml").write_text(
        "name: revs\nservices:\n  built:\n    build: .\n    pull_policy: build\n"
        "    command: [\"sleep\", \"3600\"]\n    stop_signal: SIGKILL\n")
    start_daemon(cli, resync=0.3)
    cli("up", "-d")
    before = containers(cli)
    (cli.cwd / "hello.txt").write_text("built two\n")
    wait_reconciles(cli.roots, "revs", reconciles(cli.roots, "revs") + 3)
    assert containers(cli) == before
    assert cli("exec", "built", "cat", "/hello.txt").stdout == "built one\n"
    cli("up", "-d")
    assert containers(cli)["built"][0] != before["built"][0]
    assert cli("exec", "built", "cat", "/hello.txt").stdout == "built two\n"
