"""Per-root helper processes that outlive whoever starts them: the runtime monitor and
the DNS resolver (one of each per state root).

The starter calls `spawn` (from trio): it runs `python -m <module> --state … --run …
--root-id …` in a new session and waits for that first process to exit, 0 once the
helper serves. The helper's `main` calls `detach` first: it forks; the first process
waits until the child says it serves (or dies) and exits with that answer; the child
leads its own session, so no signal meant for the starter's group reaches it and no
starter reaps it, and holds the root's lock for its whole life. The lock, not the pid
file, says whether a helper runs: a SIGKILLed one leaves its files but the kernel
drops its lock, so the next one starts without any cleanup and two cannot both run.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from stackd.errors import UnavailableError
from stackd.filemodes import open_private
from stackd.roots import Roots

LOCK_WAIT_SECONDS = 20.0


def detach(lock: Path, answers: Callable[[], bool], *, name: str,
           wait: float = LOCK_WAIT_SECONDS) -> Callable[[], None]:
    """Become the root's `name` helper, in a new session, holding `lock`; returns
    `ready()`, to call once serving (the starter's wait ends then). The first process
    never returns from here. Another helper may own the lock: one starting up (it
    answers soon: we exit 0 and the starter talks to it) or one shutting down (its
    lock is free soon). Call before any thread exists: this forks."""
    ready_r, ready_w = os.pipe()
    if os.fork() != 0:
        os.close(ready_w)
        ok = os.read(ready_r, 1) == b"1"
        os._exit(0 if ok else 1)
    os.close(ready_r)
    os.setsid()
    os.chdir("/")  # pin no directory of whoever started us
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)  # held for life
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
        if answers():
            os.write(ready_w, b"1")
            os._exit(0)
        if time.monotonic() > deadline:
            sys.stderr.write(f"{name}: {lock} stays locked by a {name} that does not answer\n")
            os._exit(1)
        time.sleep(0.02)

    def ready() -> None:
        os.write(ready_w, b"1")
        os.close(ready_w)

    return ready


def write_pidfile(path: Path) -> None:
    """Our pid, for tools and tests (the lock says whether it is current)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"{os.getpid()}\n")


def held(lock: Path) -> bool:
    """Does a live helper hold this lock? (A left-over file alone says nothing.)"""
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


async def spawn(module: str, roots: Roots, log: Path, *, what: str) -> None:
    """Start the root's helper `module` and return once it serves (or one already did)."""
    import subprocess  # here: the helpers import this module, and need no subprocess

    import trio

    roots.ensure()
    # Root-only, as everything under the run dir: a helper's log names containers.
    out = open_private(log, os.O_WRONLY | os.O_APPEND)
    try:
        result = await trio.run_process(
            [sys.executable, "-m", module, "--state", str(roots.state),
             "--run", str(roots.run), "--root-id", roots.id],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, check=False,
            start_new_session=True, env={**os.environ, "PYTHONPATH": package_parent()})
    finally:
        os.close(out)
    if result.returncode != 0:
        raise UnavailableError(f"the {what} for {roots.run} failed to start",
                               hint=f"see {log}")


def package_parent() -> str:
    import stackd

    here = os.path.dirname(os.path.dirname(os.path.abspath(stackd.__file__)))
    existing = os.environ.get("PYTHONPATH")
    return f"{here}:{existing}" if existing else here
