"""The forking side of exec: a small single-threaded fork server, and the two processes
it forks for each exec (the helper, and the process that runs in the container).

Why a fork server: exec used to fork its helper straight from the caller. The daemon
is multi-threaded (trio worker threads, hypercorn), and a fork there copies one thread
of a process whose other threads may hold locks (an import lock, an allocator's, a
file object's) that the child then waits on forever; it also copies every descriptor
of the daemon. A fresh interpreter per exec (`python -m …`) avoids both but costs a
Python start plus the security module's imports (pydantic) — about half a second.
So each calling process starts ONE fork server with `subprocess` (a fresh interpreter,
close_fds, only its control socket passed), which imports what exec needs once and
then forks a helper per request. It is single-threaded, so its forks are safe, and it
holds no descriptor but its control socket. A caller with a single thread (the CLI)
needs no server: it forks the helper itself (exec.py decides).

Per exec, over the server's control socket (SOCK_SEQPACKET, one message per request):
a pickled `Request` plus, by SCM_RIGHTS, the session socket's far end, the process's
stdin/stdout/stderr, the namespace files to join and the cgroup.procs files to write
(all opened by the caller, which has checked the container). The session socket
(SOCK_SEQPACKET too) then carries, from the container side to the caller:

- the pty master (SCM_RIGHTS, data b"m") when a TTY was asked for;
- a JSON error report `{"ok": false, "kind", "error", "hint", "exit"}` if the process
  could not be set up or exec'd;
- `{"status": exit code}` last, from the helper once the process has exited;
- `{"started": true}` instead, for a detached exec (`Request.detach`), once the
  program is exec'd: the caller then hangs up and the process runs on.

And from the caller: `{"signal": n}` to pass a signal on to the process. The caller
hanging up (a cancelled exec, a caller killed) makes the helper SIGKILL the process;
the process also has PR_SET_PDEATHSIG, so killing the helper kills it.

Everything the helper and the process run is os, socket and ctypes calls on objects
made before the fork.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pickle
import resource
import select
import signal
import socket
import struct
import sys
import termios
from dataclasses import dataclass

from stackd.errors import HostError, SpecError, StackdError
from stackd.runtime import protocol
from stackd.runtime.execfail import EXIT_SETUP_FAILED, exec_failure, workdir_failure
from stackd.runtime.security import SecurityPlan, finalize_process
from stackd.runtime.security import kernel as k
from stackd.runtime.users import read_account_files, resolve_user

TYPE_CHECKING = False  # typing's, without importing typing: see specview
if TYPE_CHECKING:
    from typing import Any, NoReturn

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431
PR_SET_PDEATHSIG = 1
MAX_MESSAGE = 1 << 20
MAX_FDS = 64


@dataclass(frozen=True, slots=True)
class Request:
    pid: int
    plan: SecurityPlan
    args: tuple[str, ...]
    env_overrides: tuple[str, ...]
    cwd: str
    spec_env: tuple[str, ...]
    user: str
    additional_groups: tuple[str, ...]
    hostname: str
    tty: bool
    # `exec -d`: the process outlives the caller. Its helper leaves the caller (a
    # session of its own, no longer the caller's child), tells it once the program is
    # exec'd (`{"started": true}`) and from then on ignores a hang-up.
    detach: bool = False
    # The container's ulimits, (name as in `ulimits:`, soft, hard): an exec'd process
    # is bound by them as its main process is (Docker's exec starts from the
    # container's process spec).
    rlimits: tuple[tuple[str, int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class Launch:
    """One exec as handed to whoever forks its helper. Descriptors are the caller's
    (or, in the server, the received copies); `ns_flags[i]` says what `ns_fds[i]` is."""

    request: Request
    session: int
    stdio: tuple[int, int, int]
    ns_fds: tuple[int, ...]
    ns_flags: tuple[int, ...]
    procs: tuple[int, ...]

    def fds(self) -> list[int]:
        return [self.session, *self.stdio, *self.ns_fds, *self.procs]


def exec_environment(spec_env: tuple[str, ...] | list[str], overrides: tuple[str, ...] | list[str],
                     *, hostname: str, home: str, tty: bool) -> dict[str, str]:
    """The container's env, then the exec's overrides, with Docker's defaults. Pure."""
    env: dict[str, str] = {}
    for item in (*spec_env, *overrides):
        key, sep, value = item.partition("=")
        if sep:
            env[key] = value
        else:
            env.pop(key, None)  # "KEY" alone unsets, as `docker exec -e KEY` with no value
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("HOSTNAME", hostname)
    env.setdefault("HOME", home or "/")
    if tty:
        env.setdefault("TERM", "xterm")
    return env


# ---- the fork server -----------------------------------------------------------------


def encode_launch(launch: Launch) -> bytes:
    return pickle.dumps((launch.request, len(launch.ns_fds), launch.ns_flags,
                         len(launch.procs)))


def decode_launch(data: bytes, fds: list[int]) -> Launch:
    request, n_ns, ns_flags, n_procs = pickle.loads(data)  # only our caller holds the socket
    if len(fds) != 4 + n_ns + n_procs:
        raise ValueError(f"expected {4 + n_ns + n_procs} descriptors, got {len(fds)}")
    return Launch(request=request, session=fds[0], stdio=(fds[1], fds[2], fds[3]),
                  ns_fds=tuple(fds[4:4 + n_ns]), ns_flags=tuple(ns_flags),
                  procs=tuple(fds[4 + n_ns:]))


def fork_helper(launch: Launch) -> int:
    """Fork the helper for one exec; returns its pid. The caller must be
    single-threaded."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        _helper(launch)
    return pid


def serve(control: socket.socket) -> None:
    """The fork server's loop: one launch per message until the caller hangs up."""
    # Helpers are not waited for here (the caller hears their exit on the session):
    # let the kernel reap them.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    # Not the terminal's: Ctrl-C in the caller's terminal is the caller's to handle.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(control, MAX_MESSAGE, MAX_FDS)
        except InterruptedError:
            continue
        if not data:
            return  # the caller is gone
        try:
            launch = decode_launch(data, fds)
        except Exception as err:  # a broken request fails that exec, not the server
            if fds:
                _send(fds[0], {"ok": False, "kind": "HostError",
                               "error": f"exec fork server: bad request: {err}",
                               "hint": None, "exit": EXIT_SETUP_FAILED})
            for fd in fds:
                _close(fd)
            continue
        try:
            fork_helper(launch)
        except OSError as err:  # out of processes or memory: that exec fails
            _send(launch.session, {"ok": False, "kind": "HostError",
                                   "error": f"cannot fork the exec helper: {err.strerror}",
                                   "hint": "the host is out of processes or memory",
                                   "exit": EXIT_SETUP_FAILED})
        for fd in fds:
            _close(fd)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    control = socket.socket(fileno=int(args[0]))
    os.chdir("/")
    serve(control)
    return 0


# ---- the helper and the process ---------------------------------------------------------


def _send(fd: int, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        os.write(fd, json.dumps(message).encode())


def _close(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def _report(fd: int, error: BaseException, code: int) -> None:
    if isinstance(error, StackdError):
        data = protocol.error_reply(error)
    else:
        data = {"ok": False, "kind": "HostError", "error": str(error), "hint": None}
    data["exit"] = code
    _send(fd, data)


def close_all_but(keep: set[int]) -> None:
    """Close every descriptor above 2 not in `keep`: what a forked child inherited of
    its parent's (the monitor's sockets, other containers' pipes). By ranges (the
    kernel's close_range), not one call per descriptor: a monitor holds ~5 per
    container, and each of its children closes them all."""
    low = 3
    for fd in sorted(f for f in keep if f >= 3):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, max(os.sysconf("SC_OPEN_MAX"), 1 << 16))


def _helper(launch: Launch) -> NoReturn:  # pragma: no cover - runs in the child
    code = EXIT_SETUP_FAILED
    session = launch.session
    try:
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD,
                    signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        # Whoever forked us held more descriptors (the write end of the process's stdin
        # pipe among them, which would keep it from ever seeing EOF).
        close_all_but({0, 1, 2, *launch.fds()})
        detach = launch.request.detach
        if detach:
            # Not the caller's child nor in its session: its exit, its terminal's
            # hang-up or its Ctrl-C end neither us nor the process.
            if os.fork() != 0:
                os._exit(0)
            os.setsid()
            # Nor do we hold its stdio: a caller's caller reading its output to the end
            # (a pipe) would wait for us, as long as the process runs.
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                if fd != null:
                    os.dup2(null, fd)
            if null > 2:
                os.close(null)
        # Joining a PID namespace only places our children in it; the process joins
        # everything else itself.
        others = []
        for fd, flag in zip(launch.ns_fds, launch.ns_flags, strict=True):
            if flag == k.CLONE_NEWPID:
                k.setns(fd, flag)
                os.close(fd)
            else:
                others.append((fd, flag))
        # A detached exec: a pipe the process holds close-on-exec, so it closes once the
        # program runs (or the process exits). A program that could not run wrote its
        # report on the session before exiting, so the caller reads that first; one that
        # ran — even one already gone, as `true` is — is started.
        exec_r, exec_w = os.pipe2(os.O_CLOEXEC) if detach else (-1, -1)
        child = os.fork()
        if child == 0:
            if detach:
                os.close(exec_r)
            _process(launch, others, keep=exec_w)
        pidfd = os.pidfd_open(child)
        if detach:
            os.close(exec_w)
            os.read(exec_r, 1)
            os.close(exec_r)
            _send(session, {"started": True})
        close_all_but({0, 1, 2, session, pidfd})
        # A terminal's Ctrl-C or Ctrl-\ reaches us too when the caller forked us in its
        # process group; the caller passes them on itself (the "signal" message).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGQUIT, signal.SIG_IGN)
        code = _watch(session, child, pidfd, detach=detach)
        _send(session, {"status": code})
    except BaseException as err:  # never unwind into the fork server's loop
        _report(session, err, code)
    os._exit(0)


def _watch(session: int, child: int, pidfd: int, *, detach: bool = False) -> int:
    """Wait for the process; pass signals on; kill it if the caller hangs up (unless
    detached: then the caller is gone by design)."""
    poller = select.poll()
    poller.register(session, select.POLLIN)
    poller.register(pidfd, select.POLLIN)
    while True:
        for fd, _ in poller.poll():
            if fd == pidfd:
                _, status = os.waitpid(child, 0)
                code = os.waitstatus_to_exitcode(status)
                return 128 - code if code < 0 else code
            try:
                data = os.read(session, 4096)
            except OSError:
                data = b""
            if not data:
                # The caller cancelled (or died): the process goes with it.
                if not detach:
                    with contextlib.suppress(ProcessLookupError):
                        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                poller.unregister(session)
                continue
            with contextlib.suppress(ValueError, KeyError, TypeError, ProcessLookupError,
                                     OSError):
                signal.pidfd_send_signal(pidfd, int(json.loads(data)["signal"]))


def open_console(session: int) -> int:  # pragma: no cover - child
    """A pty from the container's devpts (we are inside its mount namespace); the master
    goes over the socket `session` (as runc's console socket), the slave is returned.
    Used for an exec'd process and for a container's PID 1 (child.py)."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    n = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0\0\0\0"))[0]
    slave = os.open(f"/dev/pts/{n}", os.O_RDWR | os.O_NOCTTY)
    sock = socket.socket(fileno=os.dup(session))
    try:
        socket.send_fds(sock, [b"m"], [master])
    finally:
        sock.close()
    os.close(master)
    return slave


def set_rlimit(name: str, soft: int, hard: int) -> None:
    """A ulimit (`nofile`, `nproc`, …) on the calling process: a container's main one
    (child.py) and each exec'd into it."""
    const = getattr(resource, f"RLIMIT_{name.upper()}", None)
    if const is None:
        raise SpecError(f"unknown ulimit {name!r}", hint="use nofile, nproc, core, memlock, …")
    try:
        resource.setrlimit(const, (soft, hard))
    except (ValueError, OSError) as e:
        raise HostError(f"cannot set ulimit {name}={soft}:{hard}: {e}",
                        hint="the host's hard limit may be lower; ask for less") from e


def _process(launch: Launch, ns_fds: list[tuple[int, int]], *,
             keep: int = -1) -> NoReturn:  # pragma: no cover
    """keep: a close-on-exec descriptor held until the program runs (a detached exec's,
    see _helper), or -1."""
    req = launch.request
    session = launch.session
    code = EXIT_SETUP_FAILED
    try:
        k.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        # Cgroups before the cgroup namespace: from inside it, cgroup2 would refuse a
        # move from a cgroup outside its root.
        for fd in launch.procs:
            os.write(fd, b"0")
            os.close(fd)
        for fd, flag in ns_fds:
            k.setns(fd, flag)
            os.close(fd)
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        for sig in (signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH):
            signal.signal(sig, signal.SIG_DFL)
        # setns(mnt) put us at the root of the container's mount namespace, so these
        # are the container's own files.
        os.chdir("/")
        user = resolve_user(req.user, req.additional_groups, *read_account_files())
        env = exec_environment(req.spec_env, req.env_overrides, hostname=req.hostname,
                               home=user.home, tty=req.tty)
        os.setsid()
        stdio = launch.stdio
        if req.tty:
            slave = open_console(session)
            os.fchown(slave, user.uid, -1)
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
            stdio = (slave, slave, slave)
        for target, fd in enumerate(stdio):
            if fd != target:
                os.dup2(fd, target)
        # The session is how a failed exec is reported; close-on-exec, so after a
        # successful one the program holds nothing of ours.
        os.set_inheritable(session, False)
        close_all_but({session, keep} - {-1})
        try:
            os.chdir(req.cwd)
        except OSError as err:
            raise workdir_failure(req.cwd, err) from None
        for name, soft, hard in req.rlimits:  # before the capabilities go
            set_rlimit(name, soft, hard)
        finalize_process(req.plan, user.uid, user.gid, list(user.groups))
        # Changing uid clears the parent-death signal; set it again (a custom seccomp
        # profile may refuse prctl: then a killed helper leaves the process running).
        with contextlib.suppress(OSError):
            k.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        try:
            os.execvpe(req.args[0], list(req.args), env)
        except OSError as err:
            error, code = exec_failure(req.args[0], err)
            raise error from None
    except BaseException as err:  # report everything, never unwind
        _report(session, err, code)
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
