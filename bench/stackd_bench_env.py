"""Shared by the daemon/lifecycle benchmarks: a private stackd root with the busybox image.

Everything runs on its own STACKD_ROOT/STACKD_RUN under a temp dir; `close()` takes
down what the benchmark made (stacks, daemon, monitor) so the host is left as found.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from support.busybox import make_busybox_tar  # noqa: E402

from stackd.daemon.paths import pid_path  # noqa: E402
from stackd.daemon.pidfile import locked, read_pid  # noqa: E402
from stackd.roots import Roots  # noqa: E402

IMAGE = "stackd-bench/busybox:latest"


class BenchRoot:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="stackd-bench-"))
        self.roots = Roots(self.dir / "state", self.dir / "run").ensure()
        self.env = dict(os.environ, STACKD_ROOT=str(self.roots.state),
                        STACKD_RUN=str(self.roots.run))
        tar = make_busybox_tar(self.dir / "busybox.tar", self.dir)
        self.stackd("image", "import", str(tar), IMAGE)

    def stackd(self, *args: str, cwd: Path | None = None, check: bool = True,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([sys.executable, "-m", "stackd", *args], cwd=cwd,
                           env={**self.env, **(env or {})}, capture_output=True, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"stackd {' '.join(args)}: {r.stderr[-2000:]}")
        return r

    def stackd_argv(self) -> list[str]:
        """What a user types: the installed `stackd` script (not `python -m`)."""
        script = Path(sys.executable).with_name("stackd")
        return [str(script)] if script.exists() else [sys.executable, "-m", "stackd"]

    def timed(self, *args: str, cwd: Path | None = None) -> float:
        t0 = time.perf_counter()
        self.stackd(*args, cwd=cwd)
        return time.perf_counter() - t0

    def daemon_pid(self) -> int | None:
        path = pid_path(self.roots)
        return read_pid(path) if locked(path) else None

    def write_stack(self, name: str, services: int, *, replicas: int = 1,
                    init: bool = False) -> Path:
        d = self.dir / name
        d.mkdir(exist_ok=True)
        lines = [f"name: {name}", "services:"]
        for i in range(services):
            lines += [f"  s{i:03d}:", f"    image: {IMAGE}", "    pull_policy: never",
                      '    command: ["sleep", "86400"]', "    stop_signal: SIGKILL",
                      "    restart: unless-stopped"]
            if init:
                lines += ["    init: true"]
            if replicas > 1:
                lines += ["    deploy:", f"      replicas: {replicas}"]
        (d / "compose.yaml").write_text("\n".join(lines) + "\n")
        return d

    def close(self) -> None:
        for d in self.dir.iterdir():
            if (d / "compose.yaml").exists():
                self.stackd("down", "-v", cwd=d, check=False)
        # A `run -d` container (and the network `run` made for it) is no stack's:
        # `down` leaves it, and reclaim below ends processes, not networks.
        if self.daemon_pid():
            self.stackd("system", "prune", "-f", "--volumes", check=False)
            self.stackd("container", "rm", "-f", *self.stackd(
                "container", "ls", "-q", check=False).stdout.split(), check=False)
            self.stackd("network", "prune", check=False)
        pid = self.daemon_pid()
        if pid:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while self.daemon_pid() and time.monotonic() < deadline:
                time.sleep(0.05)
        from stackd.leaks import reclaim

        reclaim(self.roots)
        shutil.rmtree(self.dir, ignore_errors=True)


def have(tool: str) -> bool:
    return shutil.which(tool) is not None
