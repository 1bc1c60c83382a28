"""`up --wait` and `--wait-timeout`, and `ps` showing a paused container, end to end:
what a user sees from the CLI against the real daemon and runtime."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import CLI, DEMO_IMAGE, torn_down
from support.psrows import ps_rows

from stackd.roots import Roots

pytestmark = [pytest.mark.root, pytest.mark.slow]

STACK = f"""\
name: waiting
services:
  slow:
    image: {DEMO_IMAGE}
    pull_policy: never
    # Healthy only after ~2 s: a plain `up -d` returns with it still (starting).
    command: [sh, -c, "sleep 2; touch /tmp/ok; exec sleep 1000"]
    stop_signal: SIGKILL
    healthcheck:
      test: [CMD, test, -f, /tmp/ok]
      interval: 300ms
      retries: 50
  job:
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [sh, -c, "sleep 0.5; echo migrated"]
    restart: "no"
"""

NEVER = f"""\
services:
  never:
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [sleep, "1000"]
    stop_signal: SIGKILL
    healthcheck:
      test: [CMD, "false"]
      interval: 300ms
      retries: 1000
"""


@pytest.fixture
def cli(no_leaks: Roots, demo_image: str, tmp_path: Path) -> Iterator[CLI]:
    work = tmp_path / "waiting"
    work.mkdir()
    (work / "compose.yaml").write_text(STACK)
    with torn_down(CLI(no_leaks, work)) as cli:
        yield cli


def rows(cli: CLI) -> dict[str, dict[str, object]]:
    return {r["service"]: r for r in ps_rows(cli("ps", "-a", "--format", "json").stdout)}


def test_up_wait_returns_once_healthy_and_wait_timeout_fails_naming_the_service(
        cli: CLI) -> None:
    cli("up", "--wait")
    got = rows(cli)
    assert got["slow"]["state"] == "running" and got["slow"]["health"] == "healthy", got
    # Compose's names too, for scripts written against `docker compose ps --format json`.
    assert (got["slow"]["State"], got["slow"]["Health"], got["slow"]["Service"],
            got["job"]["ExitCode"]) == ("running", "healthy", "slow", 0), got
    assert got["job"]["state"] == "exited" and got["job"]["exit_code"] == 0, got
    assert "(healthy)" in cli("ps").stdout

    # pause: ps says so, as docker's does; --wait does not take a paused one as ready.
    cli("pause", "slow")
    assert "(Paused)" in cli("ps", "slow").stdout
    r = cli("up", "--wait-timeout", "1", "slow", check=False)
    assert r.returncode == 1 and "slow (paused)" in r.stderr, r.stderr
    cli("unpause", "slow")
    assert "(Paused)" not in cli("ps", "slow").stdout

    (cli.cwd / "compose.override.yaml").write_text(NEVER)
    t0 = time.monotonic()
    r = cli("up", "--wait-timeout", "2", check=False)
    took = time.monotonic() - t0
    assert r.returncode == 1, r
    assert "not ready after --wait-timeout 2s: never (starting)" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert took < 12, f"--wait-timeout 2 took {took:.1f}s"
    assert rows(cli)["never"]["health"] == "starting"


def test_start_wait_returns_once_the_started_service_is_healthy(cli: CLI) -> None:
    """Compose's `start --wait`: a plain start returns with `slow` still starting; with
    --wait, once it is healthy (~2 s after it starts)."""
    # A start keeps the container's writable layer: the mark of the last run goes first.
    (cli.cwd / "compose.override.yaml").write_text(
        "services:\n  slow:\n    command: [sh, -c, 'rm -f /tmp/ok; sleep 2; touch /tmp/ok; "
        "exec sleep 1000']\n")
    cli("up", "-d", "slow")
    cli("stop", "slow")
    cli("start", "--wait", "slow")
    assert rows(cli)["slow"]["health"] == "healthy"
    cli("stop", "slow")
    r = cli("start", "--wait-timeout", "0.5", "slow", check=False)
    assert r.returncode == 1 and "slow (starting)" in r.stderr, r.stderr


def test_up_wait_fails_naming_a_job_that_failed(cli: CLI) -> None:
    (cli.cwd / "compose.override.yaml").write_text(
        "services:\n  job:\n    command: [sh, -c, 'exit 3']\n")
    r = cli("up", "--wait", "job", check=False)
    assert r.returncode == 1, r
    assert "service 'job': container waiting-job-1 exited with code 3" in r.stderr, r.stderr


def test_attach_follows_a_service_until_it_exits_with_its_code(cli: CLI) -> None:
    (cli.cwd / "compose.override.yaml").write_text(
        "services:\n  talker:\n"
        f"    image: {DEMO_IMAGE}\n    pull_policy: never\n    restart: 'no'\n"
        "    command: [sh, -c, 'sleep 2; echo one; echo two >&2; sleep 0.5; exit 4']\n")
    cli("up", "-d", "talker")
    r = cli("attach", "talker", check=False, timeout=30)
    assert r.returncode == 4, r
    assert r.stdout == "one\n" and r.stderr == "two\n", r
    r = cli("attach", "talker", check=False)  # exited now: nothing to attach to
    assert r.returncode == 1 and "no running container of talker" in r.stderr, r.stderr


def test_wait_returns_the_jobs_exit_code_and_down_project_takes_the_stack_down(
        cli: CLI) -> None:
    (cli.cwd / "compose.override.yaml").write_text(
        "services:\n  job:\n    command: [sh, -c, 'sleep 1; exit 3']\n")
    cli("up", "-d")
    r = cli("wait", "job", check=False)
    job_id = rows(cli)["job"]["id"]
    assert (r.returncode, r.stdout) == (
        3, f'container "{job_id}" exited with status code 3\n'), r  # Compose's line
    assert rows(cli)["slow"]["state"] == "running"
    r = cli("wait", "--down-project", "job", check=False)
    assert r.returncode == 3, r
    assert cli("ps", "-a", "-q").stdout == ""
    r = cli("wait", "job", check=False)  # nothing left to wait for: said, not forever
    assert r.returncode == 1 and "no container of job in project waiting" in r.stderr, r


def test_wait_counts_each_containers_first_exit_and_returns_the_last_code(cli: CLI) -> None:
    """Compose's wait returns once each container has exited, one its restart policy
    starts again too, each line printed as it exits; stackd's waited for a moment when
    all were exited at once, which a restarting container never gives."""
    (cli.cwd / "compose.override.yaml").write_text(
        "services:\n"
        f"  loop:\n    image: {DEMO_IMAGE}\n    pull_policy: never\n    restart: always\n"
        "    command: [sh, -c, 'sleep 1; exit 4']\n"
        f"  late:\n    image: {DEMO_IMAGE}\n    pull_policy: never\n    restart: 'no'\n"
        "    command: [sh, -c, 'sleep 3; exit 5']\n")
    cli("up", "-d", "loop", "late")
    r = cli("wait", "loop", "late", check=False, timeout=30)
    ids = {name: row["id"] for name, row in rows(cli).items()}
    assert r.returncode == 5, r  # late's: the last to exit
    assert r.stdout.splitlines() == [
        f'container "{ids["loop"]}" exited with status code 4',
        f'container "{ids["late"]}" exited with status code 5'], r
