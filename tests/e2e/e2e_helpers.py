"""Helpers of the e2e tests (not fixtures): the CLI runner, daemon stop, cleanup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from support.netcleanup import teardown_networks

from stackd.daemon.paths import pid_path
from stackd.daemon.pidfile import locked, read_pid
from stackd.roots import Roots

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DEMO_IMAGE = "stackd-demo/busybox:latest"


@dataclass
class CLI:
    roots: Roots
    cwd: Path

    def env(self, **extra: str) -> dict[str, str]:
        return dict(os.environ, STACKD_ROOT=str(self.roots.state),
                    STACKD_RUN=str(self.roots.run), **extra)

    def __call__(self, *args: str, check: bool = True, timeout: float = 120,
                 **env: str) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([sys.executable, "-m", "stackd", *args], cwd=self.cwd,
                           env=self.env(**env), capture_output=True, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise AssertionError(f"stackd {' '.join(args)} exited {r.returncode}\n"
                                 f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}")
        return r

    def daemon_pid(self) -> int | None:
        path = pid_path(self.roots)
        return read_pid(path) if locked(path) else None


def stop_daemon(roots: Roots) -> None:
    """SIGTERM the root's daemon by the PID in its pid file (ours: a private root); if it
    does not go, SIGKILL its process group (the daemon and any helper it forked — never
    the runtime monitor or containers, which have sessions of their own)."""
    path = pid_path(roots)
    pid = read_pid(path) if locked(path) else None
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while locked(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    if locked(path):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def down_and_stop(cli: CLI) -> list[str]:
    """The end of every e2e test: down -v, stop the daemon, whatever happens."""
    try:
        cli("down", "-v", check=False, timeout=90)
    except subprocess.TimeoutExpired:
        pass
    finally:
        stop_daemon(cli.roots)
    return teardown_networks(cli.roots)


@contextmanager
def torn_down(cli: CLI) -> Iterator[CLI]:
    """Yield the CLI; afterwards, whatever happened, down -v and stop the daemon, and
    fail if network devices were left behind."""
    try:
        yield cli
    finally:
        left = down_and_stop(cli)
    assert left == [], "down -v left network devices behind"
