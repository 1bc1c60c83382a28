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

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stackd.errors import HostError
from stackd.filemodes import open_private, private_dir
from stackd.runtime import syscalls
from stackd.runtime.syscalls import CLONE_NEWNET, MNT_DETACH, MS_BIND


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
            with _host_error(f"creating network namespace {path}"):
                syscalls.unshare(CLONE_NEWNET)
            with _host_error(f"bind-mounting network namespace {path}"):
                syscalls.mount(f"/proc/self/task/{_gettid()}/ns/net", str(path), None,
                               MS_BIND)
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
            with _host_error(f"entering network namespace {path}"):
                syscalls.setns(target, CLONE_NEWNET)
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
            syscalls.setns(own, CLONE_NEWNET)
        except OSError as exc:
            # A worker thread stranded in a container's namespace would open later
            # sockets there: stop rather than go on quietly wrong.
            os.write(2, f"stackd: cannot return to own network namespace: "
                        f"{exc.strerror}\n".encode())
            os.abort()
        finally:
            os.close(own)


def _gettid() -> int:
    return threading.get_native_id()


@contextmanager
def _host_error(what: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise HostError(f"{what} failed: {os.strerror(exc.errno or 0)}") from None


def remove(path: Path) -> None:
    if is_netns(path):
        with _host_error(f"unmounting network namespace {path}"):
            syscalls.umount2(str(path), MNT_DETACH)
    path.unlink(missing_ok=True)
