"""Fixtures for daemon tests: a real `stackd daemon` process on the test's private roots."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackd.cli.client import Client
from stackd.daemon.paths import log_path, pid_path
from stackd.daemon.pidfile import read_pid
from stackd.roots import Roots


class DaemonHandle:
    def __init__(self, roots: Roots) -> None:
        self.roots = roots
        self.procs: list[subprocess.Popen[bytes]] = []
        self.log = roots.state.parent / "daemon-test.log"

    def start(self, *extra: str) -> subprocess.Popen[bytes]:
        env = dict(os.environ, STACKD_ROOT=str(self.roots.state),
                   STACKD_RUN=str(self.roots.run))
        with open(self.log, "ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "stackd", "daemon", *extra],
                                    env=env, stdout=out, stderr=out, start_new_session=True)
        self.procs.append(proc)
        self.wait_ready(proc)
        return proc

    def wait_ready(self, proc: subprocess.Popen[bytes] | None = None,
                   timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        with Client(self.roots, autostart=False) as c:
            while time.monotonic() < deadline:
                if c.alive():
                    return
                if proc is not None and proc.poll() is not None:
                    raise AssertionError(f"daemon exited {proc.returncode}:\n{self.logs()}")
                time.sleep(0.02)
        raise AssertionError(f"daemon did not answer within {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        text = ""
        for p in (self.log, log_path(self.roots)):
            if p.exists():
                text += p.read_text(errors="replace")
        return text

    def client(self) -> Client:
        return Client(self.roots, autostart=False)

    @property
    def pid(self) -> int | None:
        return read_pid(pid_path(self.roots))

    def stop_all(self) -> None:
        """Stop every daemon this test started, by PID: ours, and one started on demand."""
        pids = {p.pid for p in self.procs if p.poll() is None}
        on_demand = read_pid(pid_path(self.roots))
        if on_demand:
            pids.add(on_demand)
        for pid in pids:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for pid in pids:
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            if _alive(pid):
                # Its process group: the daemon and helpers it forked, never the runtime
                # monitor or containers (sessions of their own).
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of ours counts as gone.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


@pytest.fixture
def daemons(roots: Roots) -> Iterator[DaemonHandle]:
    """Start daemons with `.start()`; all of them are stopped at the end, even on failure."""
    handle = DaemonHandle(roots)
    try:
        yield handle
    finally:
        handle.stop_all()


@pytest.fixture
def daemon(daemons: DaemonHandle) -> DaemonHandle:
    """One running daemon."""
    daemons.start()
    return daemons

