"""Network namespaces kept alive by a bind mount under the run dir.

A container joins its namespace by path (ContainerSpec.namespaces.net), so the
namespace — and with it its addresses — outlives the container's processes: a restart
finds the same network. Blocking functions; run them in a worker thread.

Everything here happens in the calling thread, never in a forked child: the daemon has
many threads, and a child forked from it (as pyroute2's `IPRoute(netns=…)` does) can
hang forever on a lock another thread held at the fork — one such child hung a whole
`up` of 50 services. A network namespace is per thread, so a worker thread can step
into one (`entered`), open what it needs there, and step back out.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stackd.errors import HostError
from stackd.filemodes import open_private, private_dir

MNT_DETACH = 2
MS_BIND = 0x1000
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def netns_dir(run: Path) -> Path:
    return run / "netns"


def netns_path(run: Path, container_id: str) -> Path:
    return netns_dir(run) / container_id


def is_netns(path: Path) -> bool:
    """A bind-mounted namespace, not just the empty file it is mounted on."""
    try:
        return os.stat(path).st_dev != os.stat(path.parent).st_dev
    except FileNotFoundError:
        return False


def create(path: Path) -> None:
    if is_netns(path):
        return
    private_dir(path.parent, parents=True)
    os.close(open_private(path, os.O_RDONLY))
    try:
        with _returning():
            # unshare moves only this thread into the new namespace; the bind mount (in
            # the process's shared mount namespace) keeps it alive after we step back.
            _check(_libc.unshare(CLONE_NEWNET), f"creating network namespace {path}")
            _check(_libc.mount(f"/proc/self/task/{_gettid()}/ns/net".encode(),
                               os.fsencode(path), None, MS_BIND, None),
                   f"bind-mounting network namespace {path}")
    except HostError:
        path.unlink(missing_ok=True)
        raise


@contextmanager
def entered(path: Path | str) -> Iterator[None]:
    """Run the body with this thread inside the namespace at `path`.

    Sockets opened in the body belong to that namespace for their whole life, so open
    them here and use them after; the thread is back in its own namespace on exit.
    """
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise HostError(f"opening network namespace {path} failed: {exc.strerror}") from None
    try:
        with _returning():
            _check(_libc.setns(target, CLONE_NEWNET), f"entering network namespace {path}")
            yield
    finally:
        os.close(target)


@contextmanager
def _returning() -> Iterator[int]:
    """Bring this thread back to the namespace it is in now, whatever the body does."""
    own = os.open(f"/proc/self/task/{_gettid()}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        yield own
    finally:
        try:
            if _libc.setns(own, CLONE_NEWNET) != 0:
                # A worker thread stranded in a container's namespace would open later
                # sockets there: stop rather than go on quietly wrong.
                err = ctypes.get_errno()
                os.write(2, f"stackd: cannot return to own network namespace: "
                            f"{os.strerror(err)}\n".encode())
                os.abort()
        finally:
            os.close(own)


def _gettid() -> int:
    return threading.get_native_id()


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise HostError(f"{what} failed: {os.strerror(err)}")


def remove(path: Path) -> None:
    if is_netns(path) and _libc.umount2(os.fsencode(path), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise HostError(f"unmounting network namespace {path} failed: {os.strerror(err)}")
    path.unlink(missing_ok=True)
