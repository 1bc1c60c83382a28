"""exec from a multi-threaded caller (the daemon) neither forks that caller nor lets
the container see the caller's descriptors, and a lock held by another thread cannot
hang it."""

from __future__ import annotations

import _imp
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import trio
from exec_helpers import cancel_exec_once_running

from stackd.runtime.exec import _ForkServer, exec_in, start_fork_server

pytestmark = pytest.mark.root

HOLD_SECONDS = 4.0


@contextlib.contextmanager
def other_threads_holding_locks() -> Iterator[None]:
    """Two other threads: one holds a plain lock, one the interpreter's import lock
    (which os.fork takes before forking). Both let go after HOLD_SECONDS at the latest,
    so a caller that forks anyway is late rather than hung for good."""
    done = threading.Event()
    held = threading.Barrier(3)

    def hold_lock() -> None:
        with threading.Lock():
            held.wait()
            done.wait(HOLD_SECONDS)

    def hold_import_lock() -> None:
        _imp.acquire_lock()
        try:
            held.wait()
            done.wait(HOLD_SECONDS)
        finally:
            _imp.release_lock()

    threads = [threading.Thread(target=hold_lock), threading.Thread(target=hold_import_lock)]
    for t in threads:
        t.start()
    held.wait()
    try:
        yield
    finally:
        done.set()
        for t in threads:
            t.join()


async def test_exec_from_a_threaded_caller_does_not_hang_on_others_locks(running):
    await exec_in(running, ["true"])  # the fork server is up: what follows is steady state
    inheritable = os.open(os.devnull, os.O_RDONLY)  # not close-on-exec
    os.set_inheritable(inheritable, True)
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, True)
    try:
        with other_threads_holding_locks():
            started = time.monotonic()
            result = await exec_in(running, ["ls", "/proc/self/fd"])
            took = time.monotonic() - started
    finally:
        for fd in (inheritable, read_end, write_end):
            os.close(fd)
    # A fork from this process would have waited for the import lock to be released.
    assert took < HOLD_SECONDS / 2, f"exec took {took:.1f} s while other threads held locks"
    assert result.exit_code == 0
    # Only stdio, and the directory ls is listing: nothing of the caller's.
    assert sorted(int(n) for n in result.stdout.split()) == [0, 1, 2, 3]


async def test_exec_process_sees_none_of_the_callers_descriptors(running):
    # The helper forks in a process of its own: even what this process leaves
    # inheritable, and its many other descriptors, stay here.
    mine = [os.open(os.devnull, os.O_RDONLY) for _ in range(20)]
    for fd in mine:
        os.set_inheritable(fd, True)
    try:
        threading.Thread(target=time.sleep, args=(2,)).start()  # a threaded caller
        result = await exec_in(running, ["sh", "-c", "ls /proc/self/fd; ls /proc/1/fd"])
    finally:
        for fd in mine:
            os.close(fd)
    assert result.exit_code == 0
    assert set(result.stdout.split()) <= {b"0", b"1", b"2", b"3"}


async def test_cancelled_exec_from_a_threaded_caller_kills_the_process(running, roots):
    stop = threading.Event()
    threading.Thread(target=stop.wait, args=(10,)).start()
    try:
        await cancel_exec_once_running(running, roots.id)
    finally:
        stop.set()


async def test_a_killed_fork_server_is_replaced(running):
    stop = threading.Event()
    threading.Thread(target=stop.wait, args=(10,)).start()
    try:
        start_fork_server()
        server = _ForkServer._current
        assert server is not None
        assert (await exec_in(running, ["true"])).exit_code == 0
        assert _ForkServer._current is server
        server.proc.kill()
        server.proc.wait()
        result = await exec_in(running, ["echo", "again"])
        assert (result.exit_code, result.stdout) == (0, b"again\n")
        assert _ForkServer._current is not server
    finally:
        stop.set()


# What `stackd exec -it` does: a single-threaded process needs no fork server.
CLI_LIKE = """
import sys, threading, trio
from stackd.roots import Roots
from stackd.runtime.exec import _ForkServer, exec_interactive
from stackd.runtime.runtime import Runtime
state = Runtime(Roots.from_env()).inspect_here(sys.argv[1])
code = exec_interactive(state, ["sh", "-c", "echo out; echo err >&2; exit 5"])
assert threading.active_count() == 1 and _ForkServer._current is None
sys.exit(code)
"""


async def test_a_single_threaded_caller_forks_the_helper_itself(running):
    result = await trio.run_process([sys.executable, "-c", CLI_LIKE, running.id],
                                    capture_stdout=True, capture_stderr=True, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (5, b"out\n", b"err\n")


async def test_signals_to_an_attached_exec_reach_the_process(running):
    # `stackd exec` (no TTY) in the foreground: a SIGTERM or Ctrl-C sent to it goes on
    # to the process inside, which may handle it, rather than just ending the command.
    script = CLI_LIKE.replace(
        '["sh", "-c", "echo out; echo err >&2; exit 5"]',
        '["sh", "-c", "trap \'echo got-term; exit 3\' TERM; echo ready; '
        'while :; do sleep 0.05; done"]')
    async with trio.open_nursery() as nursery:
        proc = await nursery.start(lambda task_status: trio.run_process(
            [sys.executable, "-c", script, running.id], stdout=subprocess.PIPE,
            check=False, task_status=task_status))
        assert proc.stdout is not None
        with trio.fail_after(10):
            assert await proc.stdout.receive_some(100) == b"ready\n"
            proc.send_signal(signal.SIGTERM)
            rest = b""
            while chunk := await proc.stdout.receive_some(100):
                rest += chunk
            await proc.wait()
    assert (proc.returncode, rest) == (3, b"got-term\n")
