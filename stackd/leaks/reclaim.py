"""Removing what `lister` finds of one state root: for test teardown after a failure
(and the benchmarks' clean-up), so one bad run leaks nothing.

It kills processes, unmounts and removes cgroups, so it is kept apart from the lister,
which only reads.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from stackd.leaks.lister import find_leaks, monitors
from stackd.roots import Roots


def reclaim(roots: Roots) -> None:
    """Best effort: stop the root's daemon, delete every container through its monitor,
    then stop the monitor, then remove whatever it could not."""
    _kill_daemon(roots)
    base = roots.run / "containers"
    ids = sorted(os.listdir(base)) if base.is_dir() else []
    for cid in ids:
        ask_monitor(roots, {"op": "delete", "id": cid, "force": True})
    ask_monitor(roots, {"op": "shutdown"})
    time.sleep(0.2)
    # Whatever the monitor could not clean: its own process, cgroups, mounts — never
    # what the host records as another root's, and nothing whose owner is unrecorded
    # while another live root shares this root's 16-bit id.
    leaks = find_leaks(roots.id, [roots])
    if any(other != roots for _, other in monitors(roots.id)):
        leaks = [leak for leak in leaks if leak.owner]
    for leak in leaks:
        if leak.kind in ("monitor", "resolver", "process"):
            try:
                os.kill(int(leak.what.split()[0]), signal.SIGKILL)
            except OSError:
                pass
    from stackd.errors import StackdError
    from stackd.runtime.cgroups import remove_root_parents
    from stackd.runtime.cgroups.base import kill_procs, rmdir_retrying

    for leak in sorted(leaks, key=lambda x: -len(x.what)):  # deepest first
        try:
            if leak.kind == "cgroup":
                # What joined since the look above (a create in flight), then the
                # kernel's moment of EBUSY after the last task went.
                kill_procs(Path(leak.what, "cgroup.procs"))
                rmdir_retrying(Path(leak.what), timeout=1.0)
            elif leak.kind == "mount":
                subprocess.run(["umount", "-l", leak.what], capture_output=True, check=False)
        except (OSError, StackdError):
            pass
    # And the shared `stackd` parent, if this root was the last one in it: the monitor
    # removes it as it exits, unless it was still busy with its cgroups then.
    try:
        remove_root_parents(roots.id)
    except (OSError, StackdError):
        pass


def _kill_daemon(roots: Roots) -> None:
    """First, so that nothing heals what is removed next: a live daemon restarts a
    deleted container within milliseconds, and its new veth has no owner recorded until
    the step after the kernel makes it — a moment in which it looks like any root's of
    the same 16-bit id."""
    from stackd.daemon.paths import pid_path
    from stackd.daemon.pidfile import locked, read_pid

    path = pid_path(roots)
    pid = read_pid(path)
    if pid is None or not locked(path):
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        return
    deadline = time.monotonic() + 5
    while locked(path) and time.monotonic() < deadline:  # the lock goes with the process
        time.sleep(0.01)


def ask_monitor(roots: Roots, message: dict[str, object]) -> dict[str, object] | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(30)
        sock.connect(str(roots.run / "monitor.sock"))
        sock.sendall(json.dumps(message).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
        reply: dict[str, object] = json.loads(buf) if buf else {}
        return reply
    except (OSError, ValueError):
        return None
    finally:
        sock.close()
