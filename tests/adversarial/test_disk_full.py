"""A full disk under the state root while a service restarts in a loop: the daemon
stays up, says what is wrong (status, events, one-line CLI errors), keeps its logs
small, and converges once there is room again."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from e2e_helpers import CLI, DEMO_IMAGE, down_and_stop
from support.leakcheck import settle
from support.psrows import ps_rows

from stackd.images import ImageStore
from stackd.state.db import StateDB

pytestmark = pytest.mark.root

TMPFS_SIZE = "96m"
LOG_BOUND = 100 * 1024

STACK = """\
name: full
services:
  loop:
    image: stackd-demo/busybox:latest
    pull_policy: never
    restart: always
    stop_signal: SIGKILL
    command: [sh, -c, 'echo run; sleep 0.2; exit 3']
"""


@pytest.fixture
def full_cli(cli: CLI, tmp_path: Path) -> Iterator[CLI]:
    """`cli` with its state root on a small tmpfs of its own, the demo image imported
    there again. Mounted after `cli`'s leak check has looked (a mount under the root
    is a leak to it) and taken down before `cli`'s teardown looks again: down, the
    daemon stopped, the monitor gone, then unmounted."""
    state = cli.roots.state
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0711",
                    "stackd-test-full", str(state)], check=True)
    try:
        cli.roots.ensure()
        ImageStore(cli.roots).import_rootfs(tmp_path / "busybox.tar", ref=DEMO_IMAGE)
        yield cli
    finally:
        try:
            down_and_stop(cli)
            settle(cli.roots)
        finally:
            unmount(state)


def unmount(path: Path) -> None:
    # The monitor's last unmounts and removals may still be under way for a moment.
    for _ in range(20):
        if subprocess.run(["umount", str(path)], capture_output=True,
                          check=False).returncode == 0:
            return
        time.sleep(0.25)
    subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> Path:
    """Write zeros into path/filler until the file system has no room left."""
    filler = path / "filler"
    chunk = b"\0" * (1 << 20)
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
    # And the last few pages a 1 MiB chunk did not fit into.
    with open(filler, "ab", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
    return filler


def wait_for(what: str, predicate: Callable[[], object], timeout: float = 30) -> object:
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        assert time.monotonic() < deadline, f"not in {timeout:.0f}s: {what}"
        time.sleep(0.2)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def one_line_error(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "ExceptionGroup" not in r.stderr, r.stderr
    # `up` shows its progress lines first; what went wrong is said once, by stackd.
    said = [line for line in r.stderr.splitlines() if line.startswith("stackd: ")]
    assert len(said) == 1 and "no space left on the disk" in said[0], r.stderr
    return said[0]


def events(cli: CLI) -> list[dict]:
    r = cli("events", "--all-projects", "--no-follow", "--json", "--since", "0")
    return [json.loads(line) for line in r.stdout.splitlines()]


def test_a_full_disk_during_a_restart_loop(full_cli: CLI, tmp_path: Path) -> None:
    cli = full_cli
    (cli.cwd / "compose.yaml").write_text(STACK)
    cli("up", "-d")
    daemon = cli.daemon_pid()
    assert daemon is not None
    wait_for("a few restarts", lambda: sum(
        e["type"] == "restart" for e in events(cli)) >= 3)

    filler = fill(cli.roots.state)
    try:
        time.sleep(6)  # ~30 exits of the loop service on a full disk
        assert alive(daemon), "the daemon died of a full disk"
        assert cli.daemon_pid() == daemon

        status = cli("daemon", "status", "--format", "json", check=False)
        assert status.returncode == 1, status
        faults = json.loads(status.stdout)["faults"]
        assert [f["kind"] for f in faults] == ["disk_full"], faults
        assert faults[0]["path"] == str(cli.roots.state)
        assert any(e["type"] == "error" and e["attrs"].get("fault") == "disk_full"
                   for e in events(cli))

        # A new service needs room (its container's files): refused in one line.
        (cli.cwd / "compose.yaml").write_text(STACK + """\
  more:
    image: stackd-demo/busybox:latest
    pull_policy: never
    command: [sleep, '1000']
""")
        one_line_error(cli("up", "-d", check=False))
        tar = tmp_path / "busybox.tar"
        assert tar.exists()
        one_line_error(cli("image", "import", str(tar), "full/other:1", check=False))

        time.sleep(4)  # more exits, more failing writes: the logs must not grow with them
        assert alive(daemon)
        monitor_log = cli.roots.run / "monitor.log"
        daemon_log = cli.roots.state / "logs" / "daemon.log"
        for log in (monitor_log, daemon_log):
            size = log.stat().st_size if log.exists() else 0
            assert size < LOG_BOUND, f"{log}: {size} bytes"
    finally:
        filler.unlink()

    # Room again: the fault clears, the loop restarts again, the new service comes up.
    wait_for("the fault to clear", lambda: cli("daemon", "status", check=False).returncode == 0)
    assert any(e["type"] == "heal" and e["attrs"].get("fault") == "disk_full"
               for e in events(cli))
    cli("up", "-d")
    # Converged: both services' containers are there (the loop's may be between two
    # runs of its restart, so look until it is, as a user would with `ps -a`).
    def both() -> bool:
        rows = ps_rows(cli("ps", "-a", "--format", "json").stdout)
        return sorted(r["service"] for r in rows) == ["loop", "more"]
    wait_for("both services' containers", both, timeout=60)
    # After the heal (by sequence number: the daemon keeps only the last 1000 events);
    # the restart backoff has grown meanwhile, as it does for any crash loop.
    since = max(e["seq"] for e in events(cli) if e["type"] == "heal")
    wait_for("a restart once there is room", lambda: any(
        e["type"] == "restart" and e["seq"] > since for e in events(cli)), timeout=60)
    assert cli.daemon_pid() == daemon


def test_a_state_database_on_a_full_disk_says_so_in_one_line(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "stackd-test-full", str(disk)],
                   check=True)
    try:
        filler = fill(disk)
        r = subprocess.run([sys.executable, "-c", "from pathlib import Path\n"
                            "from stackd.state.db import StateDB\n"
                            f"StateDB.open(Path({str(disk / 'stackd.db')!r}))"],
                           capture_output=True, text=True, check=False)
        assert "DiskFullError: no space left on the disk" in r.stderr, r.stderr
        filler.unlink()
        StateDB.open(disk / "stackd.db").close()  # room again: it opens
    finally:
        unmount(disk)
