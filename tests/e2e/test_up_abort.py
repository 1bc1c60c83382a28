"""`up --abort-on-container-exit`, `--abort-on-container-failure` and `--exit-code-from`:
a stack run as one job, as CI pipelines run `docker compose up` — the first container
to exit stops the rest, and `up` exits with the code Compose gives."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import CLI, DEMO_IMAGE, stack_dir
from support.psrows import ps_rows

from stackd.roots import Roots

pytestmark = [pytest.mark.root, pytest.mark.slow]

STACK = f"""\
name: job
services:
  db:
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [sleep, "1000"]
    stop_signal: SIGKILL
  setup:
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [sh, -c, "echo set up"]
  tests:
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [sh, -c, "sleep 1; echo tests ran; exit 3"]
    depends_on:
      db: {{condition: service_started}}
      setup: {{condition: service_completed_successfully}}
"""


@pytest.fixture
def stack(no_leaks: Roots, demo_image: str, tmp_path: Path) -> Iterator[CLI]:
    with stack_dir(no_leaks, tmp_path, "job", STACK) as cli:
        yield cli


def states(cli: CLI) -> dict[str, tuple[str, int | None]]:
    return {r["service"]: (r["state"], r["exit_code"])
            for r in ps_rows(cli("ps", "-a", "--format", "json").stdout)}


def test_the_first_exit_stops_the_stack_and_gives_its_code(stack: CLI) -> None:
    # `setup` exits 0 first, and is what ends an --abort-on-container-exit run…
    r = stack("up", "--abort-on-container-exit", "db", "setup", check=False, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "job-setup-1 exited with code 0" in r.stderr
    assert states(stack)["db"] == ("exited", 137)

    # …while --abort-on-container-failure waits for one that fails.
    r = stack("up", "--abort-on-container-failure", check=False, timeout=60)
    assert r.returncode == 3, r.stderr
    assert "tests ran" in r.stdout and "job-tests-1 exited with code 3" in r.stderr
    assert states(stack) == {"db": ("exited", 137), "setup": ("exited", 0),
                             "tests": ("exited", 3)}
    # Again: this run's output only, as Compose attaches (was: every earlier run's too).
    r = stack("up", "--abort-on-container-failure", check=False, timeout=60)
    assert r.returncode == 3 and r.stdout.count("tests ran") == 1, r.stdout


def test_exit_code_from_gives_that_services_code(stack: CLI) -> None:
    r = stack("up", "--exit-code-from", "tests", check=False, timeout=60)
    # tests' code, and its last output: printed before up went (it used to be lost).
    assert r.returncode == 3 and "tests ran" in r.stdout, (r.stdout, r.stderr)
    r = stack("up", "--exit-code-from", "db", "db", "tests", check=False, timeout=60)
    assert r.returncode == 137, r.stderr  # db was stopped (SIGKILL) when setup exited
    r = stack("up", "--exit-code-from", "nosuch", check=False)
    assert r.returncode == 2 and "no such service: nosuch" in r.stderr
    r = stack("up", "-d", "--exit-code-from", "tests", check=False)
    assert r.returncode == 2 and "not with -d" in r.stderr


def test_attach_and_no_attach_choose_whose_output_up_prints(stack: CLI) -> None:
    r = stack("up", "--abort-on-container-failure", "--no-attach", "setup", check=False,
              timeout=60)
    assert r.returncode == 3 and "tests ran" in r.stdout and "set up" not in r.stdout
    # tests runs again (its last run failed), but only db's output is followed.
    r = stack("up", "--abort-on-container-failure", "--attach", "db", check=False,
              timeout=60)
    assert r.returncode == 3 and "tests ran" not in r.stdout, r.stdout
    assert "job-tests-1 exited with code 3" in r.stderr


def test_followed_lines_take_logs_own_options(stack: CLI) -> None:
    r = stack("up", "--abort-on-container-failure", "--no-log-prefix", "--no-color",
              "--attach", "tests", check=False, timeout=60)
    assert r.returncode == 3 and "tests ran" in r.stdout.splitlines(), r.stdout
    r = stack("up", "--abort-on-container-failure", "--timestamps", "--attach", "tests",
              check=False, timeout=60)
    line = next(x for x in r.stdout.splitlines() if x.endswith("tests ran"))
    assert re.search(r"\| \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", line), line


def test_up_of_a_one_shot_job_returns_once_it_ran_and_runs_it_again(stack: CLI) -> None:
    """As Compose's: an attached `up` ends by itself once every container it watches
    (the services named, else those it follows) has exited for good, and `up` starts
    every container that is not running, a finished job too. `up setup` followed the
    logs forever, and a second `up` said "up to date" and left the job as it was."""
    r = stack("up", "setup", timeout=60)
    assert "set up" in r.stdout and "job-setup-1 exited with code 0" in r.stderr, r.stderr
    r = stack("up", "setup", timeout=60)
    assert r.stdout.count("set up") == 1, r.stdout  # this run's output
    stack("up", "-d", "setup")
    deadline = time.monotonic() + 30
    while stack("logs", "setup").stdout.count("set up") < 3:
        assert time.monotonic() < deadline, stack("logs", "setup").stdout
        time.sleep(0.2)
    # What the job depends on keeps running; its failure is no failure of `up`
    # (that is what --exit-code-from is for).
    r = stack("up", "tests", timeout=60)
    assert "tests ran" in r.stdout and "job-tests-1 exited with code 3" in r.stderr
    assert states(stack) == {"db": ("running", None), "setup": ("exited", 0),
                             "tests": ("exited", 3)}


def test_logs_f_of_a_job_returns_once_it_has_exited_with_all_it_wrote(stack: CLI) -> None:
    """Compose's `logs -f` ends, as its attached `up`, once what it follows has exited
    for good: `up -d tests && logs -f tests` in a CI script. stackd's followed forever;
    and a long history came at ~4,000 lines a second (a write per line)."""
    (stack.cwd / "compose.override.yaml").write_text(
        "services:\n  tests:\n    command: [sh, -c, 'sleep 1; seq 1 50000; exit 3']\n")
    stack("up", "-d", "tests")
    r = stack("logs", "-f", "tests", timeout=60)
    lines = r.stdout.splitlines()
    assert len(lines) == 50000 and lines[-1] == "job-tests-1  | 50000", lines[-3:]
    assert "job-tests-1 exited with code 3" in r.stderr
    again = stack("logs", "-f", "--no-log-prefix", "tests", timeout=60)  # ended: at once
    assert again.stdout.splitlines()[-1] == "50000"
    with pytest.raises(subprocess.TimeoutExpired):  # a server: followed until Ctrl-C
        stack("logs", "-f", "db", timeout=3)
