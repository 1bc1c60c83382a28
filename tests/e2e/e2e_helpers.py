"""Helpers of the e2e tests (not fixtures): the CLI runner, daemon stop, cleanup."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    environ: dict[str, str] = field(default_factory=dict)  # for every command, e.g. a port

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, **self.environ, "STACKD_ROOT": str(self.roots.state),
                "STACKD_RUN": str(self.roots.run), **extra}

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


def stack_status(cli: CLI, project: str) -> dict[str, Any] | None:
    """The running daemon's record of `project` (GET /v1/stacks), or None."""
    from stackd.cli.client import Client

    with Client(cli.roots, autostart=False) as c:
        return next((s for s in c.get("/v1/stacks") if s["project"] == project), None)


def wait_reconciled(cli: CLI, project: str, *, count: int = 1, timeout: float = 30
                    ) -> dict[str, Any]:
    """Wait until the running daemon has finished `count` reconciles of `project`."""
    deadline = time.monotonic() + timeout
    while True:
        status = stack_status(cli, project)
        if status is not None and status["reconciles"] >= count:
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"no {count} reconciles of {project} within {timeout}s: "
                                 f"{status}")
        time.sleep(0.05)


def restart_daemon(cli: CLI, project: str, stopped: Iterable[str] = ()) -> None:
    """Stop the root's daemon and start a new one (on demand, as a user's next command
    does); return once that daemon has reconciled `project` with nothing left for later
    and seen every container named in `stopped`. The reconcile is the one writer: a
    restart policy or a resync that would bring a stopped container back either does it
    there or asks to be run again (`requeue`), so an `ok` after start is the moment."""
    from stackd.cli.client import Client

    old = cli.daemon_pid()
    stop_daemon(cli.roots)
    cli("ps")
    assert cli.daemon_pid() not in (None, old)
    waiting = set(stopped)
    deadline = time.monotonic() + 30
    while True:
        status = stack_status(cli, project)
        with Client(cli.roots, autostart=False) as c:
            names = {r["name"] for r in c.get("/v1/containers", project=project, all=True)}
        if status is not None and status["reconciles"] >= 1 and \
                status["last_result"] == "ok" and waiting <= names:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the new daemon did not settle {project}: containers "
                                 f"{sorted(names)}, waiting for {sorted(waiting)}; {status}")
        time.sleep(0.05)


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


@contextmanager
def stack_dir(roots: Roots, base: Path, name: str, compose: str) -> Iterator[CLI]:
    """A CLI in base/name, whose compose.yaml is `compose`, torn down afterwards."""
    work = base / name
    work.mkdir()
    (work / "compose.yaml").write_text(compose)
    with torn_down(CLI(roots, work)) as cli:
        yield cli


class Terminal:
    """The CLI with a real terminal as stdin/stdout/stderr (and controlling tty, so a
    window-size change reaches it as SIGWINCH), as a user's shell would give it."""

    def __init__(self, cli: CLI, *args: str, rows: int, cols: int) -> None:
        self.master, slave = os.openpty()
        self.resize(rows, cols, fd=slave)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stackd", *args], cwd=cli.cwd, env=cli.env(),
            stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        os.close(slave)
        self.output = b""

    def resize(self, rows: int, cols: int, fd: int | None = None) -> None:
        fcntl.ioctl(self.master if fd is None else fd, termios.TIOCSWINSZ,
                    struct.pack("HHHH", rows, cols, 0, 0))

    def read_until(self, text: bytes, timeout: float = 30) -> bytes:
        deadline = time.monotonic() + timeout
        while text not in self.output and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(self.master, 4096)
                except OSError:  # EIO: the CLI and everything on the tty are gone
                    break
                if not data:
                    break
                self.output += data
        assert text in self.output, self.output
        return self.output

    def close(self) -> int:
        try:
            return self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            os.close(self.master)
