"""`stackd run --restart …` (issue #15): the daemon supervises a single container of
no stack under Docker's restart policies — killed from outside, it comes back;
`on-failure:N` gives up after N restarts; `container stop` keeps it stopped."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import CLI, DEMO_IMAGE, torn_down

from stackd.roots import Roots

pytestmark = pytest.mark.root


@pytest.fixture
def bare(no_leaks: Roots, demo_image: str, tmp_path: Path) -> Iterator[CLI]:
    work = tmp_path / "bare"
    work.mkdir()
    with torn_down(CLI(no_leaks, work)) as cli:
        try:
            yield cli
        finally:
            names = cli("container", "ls", "-a", "-q", check=False).stdout.split()
            if names:
                cli("container", "rm", "-f", *names, check=False)


def inspect(cli: CLI, name: str) -> dict[str, object]:
    (info,) = json.loads(cli("container", "inspect", name).stdout)
    assert isinstance(info, dict)
    return info


def until(what: str, check: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.2)
    raise AssertionError(f"never: {what}")


def test_always_brings_a_killed_container_back_and_stop_keeps_it_stopped(bare: CLI) -> None:
    bare("run", "-d", "--restart", "always", "--stop-signal", "KILL", "--name", "keeper",
         DEMO_IMAGE, "sleep", "1000")
    first = inspect(bare, "keeper")
    assert first["status"] == "running"
    pid = first["pid"]
    assert isinstance(pid, int) and pid > 0
    os.kill(pid, signal.SIGKILL)  # from outside, as an OOM kill or a crash would
    until("keeper running again under a new PID",
          lambda: (i := inspect(bare, "keeper"))["status"] == "running" and i["pid"] != pid)

    bare("container", "stop", "keeper")
    assert inspect(bare, "keeper")["status"] == "exited"
    time.sleep(1.5)  # past the first backoffs: a policy that ignored the stop would act
    assert inspect(bare, "keeper")["status"] == "exited"


def test_on_failure_gives_up_after_its_restarts(bare: CLI) -> None:
    r = bare("run", "-d", "--rm", "--restart", "always", DEMO_IMAGE, "true", check=False)
    assert r.returncode != 0 and "--restart always and --rm conflict" in r.stderr
    r = bare("run", "-d", "--restart", "sometimes", DEMO_IMAGE, "true", check=False)
    assert r.returncode != 0 and "--restart 'sometimes' is not a restart policy" in r.stderr
    assert bare("container", "ls", "-a", "-q").stdout.split() == []

    bare("run", "-d", "--restart", "on-failure:2", "--name", "flaky", DEMO_IMAGE,
         "sh", "-c", "echo ran; exit 3")

    def runs() -> int:
        # A restart creates the container afresh from its spec: for that moment there
        # is none by the name, so a poll may miss it.
        r = bare("container", "logs", "flaky", check=False)
        return r.stdout.count("ran") if r.returncode == 0 else 0

    until("three runs (the first and two restarts)", lambda: runs() >= 3)
    time.sleep(1.5)  # a third restart would be due after 0.4 s
    assert bare("container", "logs", "flaky").stdout.count("ran") == 3
    assert inspect(bare, "flaky")["status"] == "exited"

