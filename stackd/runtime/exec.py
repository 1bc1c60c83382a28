"""exec: start a new process inside a running container.

The process joins every namespace of the container's first process (through
/proc/<pid>/ns/*), its cgroups (read from /proc/<pid>/cgroup), and gets the same
capabilities, seccomp filter and no_new_privs (`security.prepare` on the container's
spec, `finalize_process` in the child), the container's user unless overridden, its
environment plus overrides, and its working directory.

Process tree: joining a PID namespace only affects children, so a helper joins the
container's PID namespace and forks the real process (PID n inside), waits for it and
reports its exit status. The process moves itself into the cgroups and the other
namespaces; the helper stays out of the container's cgroups and so out of its pids
limit. The process gets PR_SET_PDEATHSIG, and the helper kills it when the caller
hangs up, so a cancelled exec kills it. With a TTY, the process opens a pty from the
container's own devpts (so `tty` inside names /dev/pts/N) and passes the master back
over the session socket, as runc's console socket does.

Who forks the helper: never a multi-threaded caller (the daemon) — a fork there can
deadlock on a lock another thread held and copies every descriptor. Such a caller
hands the exec to its fork server (exec_helper.py: a fresh single-threaded
interpreter started once per calling process); a single-threaded caller (the CLI)
forks the helper itself, which is safe and saves starting the server.

This module is the caller's side: it checks the container, opens what the process
must join (namespace files, cgroup.procs), and talks to the helper over the session.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import termios
import threading
import tty as ttymod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from stackd.errors import (
    ConflictError,
    HostError,
    PausedError,
    StackdError,
    UnavailableError,
    UsageError,
)
from stackd.runtime import exec_helper, protocol
from stackd.runtime.cgroups import parse_mounts
from stackd.runtime.cgroups.base import is_frozen
from stackd.runtime.exec_helper import Launch
from stackd.runtime.exec_helper import Request as _Request
from stackd.runtime.execfail import EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND, EXIT_SETUP_FAILED
from stackd.runtime.model import ContainerState
from stackd.runtime.security import kernel as k
from stackd.runtime.security import prepare

__all__ = ["EXIT_NOT_EXECUTABLE", "EXIT_NOT_FOUND", "EXIT_SETUP_FAILED", "ExecResult",
           "cgroup_dirs", "exec_environment", "exec_in", "exec_interactive", "start_fork_server"]

# Joined in this order (pid by the helper, the rest by the process): mnt last, since it
# moves our root into the container; the fds were all opened beforehand.
NAMESPACE_ORDER = (("ipc", k.CLONE_NEWIPC), ("uts", k.CLONE_NEWUTS), ("net", k.CLONE_NEWNET),
                   ("cgroup", k.CLONE_NEWCGROUP), ("pid", k.CLONE_NEWPID),
                   ("mnt", k.CLONE_NEWNS))
# Signals a caller uses to stop or talk to the exec'd process: passed on to it.
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                     signal.SIGUSR1, signal.SIGUSR2)
MAX_MESSAGE = 65536


@dataclass(frozen=True, slots=True)
class ExecResult:
    exit_code: int  # 128+N if killed by signal N; 126/127 when the command could not run
    stdout: bytes
    stderr: bytes  # with a TTY, both streams arrive on stdout, as on a terminal


def exec_environment(spec_env: Iterable[str], overrides: Iterable[str], *, hostname: str,
                     home: str, tty: bool) -> dict[str, str]:
    """The container's env, then the exec's overrides, with Docker's defaults. Pure."""
    return exec_helper.exec_environment(tuple(spec_env), tuple(overrides), hostname=hostname,
                                        home=home, tty=tty)


def cgroup_dirs(cgroup_text: str, mounts_text: str) -> list[str]:
    """The directories of a process's cgroups, one per hierarchy, from the text of
    /proc/<pid>/cgroup and /proc/self/mounts. Pure."""
    mounts = parse_mounts(mounts_text)
    dirs: list[str] = []
    for line in cgroup_text.splitlines():
        hier, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if not hier:
            continue
        if hier == "0" and controllers == "":
            base = mounts.v2
        else:
            base = next((mounts.v1[c] for c in controllers.split(",") if c in mounts.v1), None)
        if base is None:
            continue  # a hierarchy the host does not mount (name=systemd…): nothing to join
        d = os.path.join(str(base), path.lstrip("/"))
        if d not in dirs:
            dirs.append(d)
    return dirs


def _env_items(env: Sequence[str] | Mapping[str, str]) -> tuple[str, ...]:
    if isinstance(env, Mapping):
        return tuple(f"{key}={value}" for key, value in env.items())
    return tuple(env)


def _request(state: ContainerState, args: Sequence[str], env: Sequence[str] | Mapping[str, str],
             cwd: str | None, user: str | None, tty: bool, *, detach: bool = False,
             privileged: bool = False) -> _Request:
    """privileged (`exec --privileged`): the process gets every capability and no
    seccomp filter, as a privileged container's would; its namespaces and cgroups (the
    devices it may open) are still the container's, as Docker's."""
    if state.status != "running" or not state.pid:
        raise ConflictError(f"container {state.name} ({state.id}) is not running",
                            hint="start it first")
    if not args:
        raise StackdError("exec needs a command", hint="give the program and its arguments")
    spec = state.spec
    security = spec.security.model_copy(update={"privileged": True}) if privileged else None
    plan = prepare(spec.model_copy(update={"security": security}) if security else spec)
    return _Request(
        pid=state.pid, plan=plan, args=tuple(args), env_overrides=_env_items(env),
        cwd=cwd or spec.process.cwd or "/", spec_env=spec.process.env,
        user=spec.process.user if user is None else user,
        additional_groups=spec.process.additional_groups,
        hostname=spec.hostname, tty=tty, detach=detach,
        rlimits=tuple((rl.type, rl.soft, rl.hard) for rl in spec.process.rlimits))




# ---- starting the helper --------------------------------------------------------------


@dataclass(slots=True)
class _Session:
    """One exec in flight: our end of its session socket, and the helper's pid when we
    forked it ourselves (then it is ours to reap)."""

    sock: socket.socket
    helper_pid: int | None
    report: dict[str, Any] | None = None
    status: int | None = None
    started: bool = False  # a detached exec's program runs
    ended: bool = False
    masters: list[int] = field(default_factory=list)

    def take(self, data: bytes, fds: list[int]) -> None:
        """Record one message from the container side."""
        if fds:
            self.masters += fds
            return
        if not data:
            self.ended = True
            return
        try:
            message = json.loads(data)
        except ValueError:
            return
        if "status" in message:
            self.status = int(message["status"])
            self.ended = True
        elif message.get("started") is True:
            self.started = True
        elif message.get("ok") is False:
            self.report = message

    def receive(self) -> None:
        """One message (blocking socket) or nothing (non-blocking, none there)."""
        try:
            data, fds, _, _ = socket.recv_fds(self.sock, MAX_MESSAGE, 4)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, fds = b"", []
        self.take(data, fds)

    def signal(self, sig: int) -> None:
        with contextlib.suppress(OSError):
            self.sock.send(json.dumps({"signal": int(sig)}).encode())

    def close(self, *, kill: bool) -> None:
        """Hang up (the helper then kills the process if it still runs) and reap a
        helper we forked."""
        self.sock.close()
        for fd in self.masters:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.masters.clear()
        if self.helper_pid is not None:
            if kill:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.helper_pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.helper_pid, 0)
            self.helper_pid = None

    def outcome(self) -> tuple[int, str | None]:
        """The exit code, and the reason a command could not run (126/127, as a shell
        gives); raises the typed error of a failed setup."""
        if self.status is None:
            if self.report is not None:
                protocol.raise_error(self.report)
            raise HostError("the exec helper ended without reporting an exit status",
                            hint="the host may be out of memory or processes")
        code = self.status
        report = self.report
        if report is None:
            return code, None
        if report.get("exit") in (EXIT_NOT_FOUND, EXIT_NOT_EXECUTABLE) and code == report["exit"]:
            return code, str(report.get("error"))
        protocol.raise_error(report)
        return code, None


class _ForkServer:
    """This process's fork server (exec_helper.serve), started on first use."""

    _lock = threading.Lock()
    _current: _ForkServer | None = None

    def __init__(self) -> None:
        from stackd.detached import package_parent

        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stackd.runtime.exec_helper", str(theirs.fileno())],
                pass_fds=[theirs.fileno()], close_fds=True, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, cwd="/", start_new_session=True,
                env={**os.environ, "PYTHONPATH": package_parent()})
        except OSError as err:
            mine.close()
            raise UnavailableError(f"cannot start the exec fork server: {err}",
                                   hint="the host may be out of processes") from None
        finally:
            theirs.close()
        self.control = mine

    @classmethod
    def ensure(cls) -> _ForkServer:
        """The running server, started if there is none (or it died). Hold _lock."""
        server = cls._current
        if server is None or server.proc.poll() is not None:
            if server is not None:
                server.control.close()
            server = cls._current = _ForkServer()
        return server

    @classmethod
    def send(cls, launch: Launch) -> None:
        payload = exec_helper.encode_launch(launch)
        with cls._lock:
            for attempt in range(2):
                server = cls.ensure()
                try:
                    socket.send_fds(server.control, [payload], launch.fds())
                    return
                except (BrokenPipeError, ConnectionError):
                    # It died (killed from outside): start another, once.
                    server.control.close()
                    cls._current = None
                    if attempt:
                        raise UnavailableError("the exec fork server does not take requests",
                                               hint="see the caller's stderr") from None
                except OSError as err:
                    if err.errno != errno.EMSGSIZE:
                        raise
                    # One packet per request: a command line the kernel would refuse too.
                    raise UsageError(
                        f"cannot run {launch.request.args[0]:.100}: its arguments and "
                        "environment are too long", hint="keep them under 128 KiB in all"
                    ) from None


def start_fork_server() -> None:
    """Start this process's exec fork server now instead of at its first exec from a
    second thread (which then waits ~0.4 s for the server's imports): for a daemon
    at start-up. Idempotent."""
    with _ForkServer._lock:
        _ForkServer.ensure()


def _open_targets(req: _Request, name: str) -> tuple[list[int], list[int], list[int]]:
    """The container's namespace files (those not shared with us) and its cgroup.procs
    files, opened here: (ns fds, their CLONE_ flags, cgroup.procs fds). Refused for a
    paused container (`name`): what joins its frozen cgroup freezes too, until a thaw —
    the exec would hang, and nothing could end it."""
    try:
        pidfd = os.pidfd_open(req.pid)
    except ProcessLookupError:
        raise ConflictError(f"the container's process {req.pid} is gone",
                            hint="the container has exited") from None
    ns_fds: list[int] = []
    flags: list[int] = []
    procs: list[int] = []
    try:
        with open(f"/proc/{req.pid}/cgroup") as f, open("/proc/self/mounts") as m:
            dirs = cgroup_dirs(f.read(), m.read())
        if any(is_frozen(Path(d)) for d in dirs):
            raise PausedError(f"container {name} is paused",
                              hint=f"unpause it first (`stackd unpause`, or `stackd "
                                   f"container unpause {name}`)")
        own = {kind: os.stat(f"/proc/self/ns/{kind}").st_ino for kind, _ in NAMESPACE_ORDER}
        for kind, flag in NAMESPACE_ORDER:
            fd = os.open(f"/proc/{req.pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)
            if os.fstat(fd).st_ino == own[kind]:
                os.close(fd)  # shared with us (network_mode: host…): nothing to join
                continue
            ns_fds.append(fd)
            flags.append(flag)
        for d in dirs:
            # Written by the process itself once forked: the helper that waits for it
            # stays out of the container's cgroups (and its pids limit).
            procs.append(os.open(os.path.join(d, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC))
    except OSError as err:
        for fd in [*ns_fds, *procs]:
            os.close(fd)
        raise ConflictError(f"cannot enter the container's process {req.pid}: "
                            f"{err.strerror}", hint="the container may have just exited") from None
    finally:
        os.close(pidfd)
    return ns_fds, flags, procs


def _start(req: _Request, stdio: tuple[int, int, int], name: str) -> _Session:
    """Open what the process joins (of container `name`) and have its helper forked:
    by us if we are the only thread, else by the fork server."""
    ns_fds, flags, procs = _open_targets(req, name)
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    launch = Launch(request=req, session=theirs.fileno(), stdio=stdio, ns_fds=tuple(ns_fds),
                    ns_flags=tuple(flags), procs=tuple(procs))
    helper_pid = None
    try:
        if threading.active_count() == 1:
            helper_pid = exec_helper.fork_helper(launch)
        else:
            _ForkServer.send(launch)
    except BaseException:
        mine.close()
        raise
    finally:
        for fd in [*ns_fds, *procs]:
            os.close(fd)
        theirs.close()
    return _Session(sock=mine, helper_pid=helper_pid)


@contextlib.contextmanager
def _forwarding_signals(session: _Session) -> Iterator[None]:
    """While attached: the signals a user sends us (Ctrl-C, kill) go to the process.
    Only the main thread may install handlers; elsewhere the defaults stand."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in FORWARDED_SIGNALS}
    for sig in FORWARDED_SIGNALS:
        signal.signal(sig, lambda s, _f: session.signal(s))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# ---- the caller's side -------------------------------------------------------------


def _nonblocking(fd: int) -> None:
    os.set_blocking(fd, False)


# What a captured exec keeps of each stream: its answer is one JSON body, held in
# the daemon's memory until the command ends — `cat /dev/zero` must not take it all.
# The process reads on past it (a full pipe would stall it); the rest is dropped.
CAPTURE_LIMIT = 16 << 20


@dataclass
class _Output:
    data: bytearray = field(default_factory=bytearray)
    limit: int | None = CAPTURE_LIMIT
    cut: bool = False

    def add(self, chunk: bytes) -> None:
        if self.limit is not None and len(self.data) + len(chunk) > self.limit:
            chunk = chunk[:max(0, self.limit - len(self.data))]
            self.cut = True
        self.data += chunk

    def result(self) -> bytes:
        if not self.cut:
            return bytes(self.data)
        assert self.limit is not None
        return bytes(self.data) + (f"\n[stackd: the output went past {self.limit >> 20} "
                                   "MiB; the rest was not kept]\n").encode()


async def _pump_out(fd: int, buf: _Output) -> None:
    while True:
        await trio.lowlevel.wait_readable(fd)
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            continue
        except OSError:  # EIO: a pty whose slave side is all closed
            return
        if not data:
            return
        buf.add(data)


def _drain(fd: int, buf: _Output) -> None:
    while True:
        try:
            data = os.read(fd, 65536)
        except (BlockingIOError, OSError):
            return
        if not data:
            return
        buf.add(data)


async def _pump_in(fd: int, data: bytes, close: bool) -> None:
    view = memoryview(data)
    try:
        while view:
            await trio.lowlevel.wait_writable(fd)
            try:
                n = os.write(fd, view)
            except BlockingIOError:
                continue
            view = view[n:]
    except (BrokenPipeError, OSError):
        pass  # the process stopped reading: not our error
    finally:
        if close:
            trio.lowlevel.notify_closing(fd)
            os.close(fd)


async def exec_in(
    state: ContainerState, args: Sequence[str], *, env: Sequence[str] | Mapping[str, str] = (),
    cwd: str | None = None, user: str | None = None, tty: bool = False,
    stdin: bytes | None = None, capture: bool = True, privileged: bool = False,
) -> ExecResult:
    """Run `args` in the running container `state` and wait for it.

    env: "KEY=value" items (or a mapping) over the container's own env; user and cwd
    default to the container's. capture=False lets the process write to this
    process's stdout/stderr instead (the result's streams are then empty). Cancelling
    the call kills the process. Raises ConflictError if the container is not running,
    and the typed error of whatever else went wrong before the command started; a
    command that is missing or not executable gives exit code 127/126 with the reason
    in stderr, as a shell does.
    """
    req = _request(state, args, env, cwd, user, tty, privileged=privileged)
    out, err = _Output(), _Output()
    parent_fds: list[int] = []
    child_fds: list[int] = []
    stdin_w: int | None = None
    if tty:
        # Replaced by the pty in the process; our own 0-2 may not even be open.
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        child_fds.append(null)
        stdio = (null, null, null)
    else:
        if stdin is None:
            stdin_r = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        else:
            stdin_r, stdin_w = os.pipe2(os.O_CLOEXEC)
            _nonblocking(stdin_w)
        child_fds.append(stdin_r)
        if capture:
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            _nonblocking(out_r)
            _nonblocking(err_r)
            parent_fds += [out_r, err_r]
            child_fds += [out_w, err_w]
            stdio = (stdin_r, out_w, err_w)
        else:
            stdio = (stdin_r, sys.stdout.fileno(), sys.stderr.fileno())
    try:
        session = _start(req, stdio, state.name)
    except BaseException:
        for fd in [*parent_fds, *([stdin_w] if stdin_w is not None else [])]:
            os.close(fd)
        raise
    finally:
        for fd in child_fds:
            os.close(fd)
    session.sock.setblocking(False)
    master: int | None = None
    finished = False
    try:
        async with trio.open_nursery() as nursery:
            if not tty:
                if capture:
                    nursery.start_soon(_pump_out, parent_fds[0], out)
                    nursery.start_soon(_pump_out, parent_fds[1], err)
                if stdin_w is not None:
                    nursery.start_soon(_pump_in, stdin_w, stdin or b"", True)
                    stdin_w = None
            while not session.ended:
                await trio.lowlevel.wait_readable(session.sock)
                session.receive()
                if session.masters and master is None:
                    master = session.masters.pop(0)
                    _nonblocking(master)
                    if capture:
                        nursery.start_soon(_pump_out, master, out)
                    if stdin is not None:
                        nursery.start_soon(_pump_in, master, stdin, False)
            finished = True
            # Whatever the process wrote is in the pipes now; a background process
            # still holding them open must not keep us waiting.
            nursery.cancel_scope.cancel()
    finally:
        trio.lowlevel.notify_closing(session.sock)
        session.close(kill=not finished)
        for fd in parent_fds:
            _drain(fd, out if fd == parent_fds[0] else err)
            os.close(fd)
        if master is not None:
            _drain(master, out)
            os.close(master)
        if stdin_w is not None:
            os.close(stdin_w)
    code, message = session.outcome()
    stderr = err.result() + ((message + "\n").encode() if message else b"")
    return ExecResult(exit_code=code, stdout=out.result(), stderr=stderr)


def exec_interactive(
    state: ContainerState, args: Sequence[str], *, env: Sequence[str] | Mapping[str, str] = (),
    cwd: str | None = None, user: str | None = None, tty: bool = False,
    privileged: bool = False,
) -> int:
    """`stackd exec`: run attached to this process's terminal; returns the exit code.

    Without a TTY the process gets our stdin/stdout/stderr directly. With one, our
    terminal goes raw and is relayed to the container's pty (window size included)
    until the process exits. Signals sent to us (Ctrl-C without a TTY, kill) are
    passed on to the process when called from the main thread.
    """
    req = _request(state, args, env, cwd, user, tty, privileged=privileged)
    session = _start(req, (0, 1, 2), state.name)
    finished = False
    try:
        with _forwarding_signals(session):
            if tty:
                _relay_terminal(session)
            else:
                while not session.ended:
                    session.receive()
        finished = True
    finally:
        session.close(kill=not finished)
    code, message = session.outcome()
    if message:
        sys.stderr.write(message + "\n")
    return code


def exec_detached(
    state: ContainerState, args: Sequence[str], *, env: Sequence[str] | Mapping[str, str] = (),
    cwd: str | None = None, user: str | None = None, privileged: bool = False,
) -> tuple[int, str | None]:
    """`stackd exec -d`: start the program in the container and return once it runs;
    it outlives us, its output goes nowhere (Docker's). (0, None) once it runs; a
    program that cannot run is (126 or 127, why), as attached; a failed setup (a bad
    user or working directory) raises its typed error."""
    req = _request(state, args, env, cwd, user, False, detach=True, privileged=privileged)
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        session = _start(req, (null, null, null), state.name)
    finally:
        os.close(null)
    try:
        while not (session.started or session.ended or session.report):
            session.receive()
    finally:
        session.close(kill=False)  # reaps only the helper's first fork, gone already
    report = session.report
    if report is not None:
        if report.get("exit") in (EXIT_NOT_FOUND, EXIT_NOT_EXECUTABLE):
            return int(report["exit"]), str(report.get("error"))
        protocol.raise_error(report)
    if not session.started:
        raise HostError("the exec helper ended before the program started",
                        hint="the host may be out of memory or processes")
    return 0, None


def _copy_winsize(src: int, dst: int) -> None:
    with contextlib.suppress(OSError):
        size = fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst, termios.TIOCSWINSZ, size)


def _relay_terminal(session: _Session) -> None:
    while not session.masters and not session.ended:
        session.receive()
    if not session.masters:
        return
    master = session.masters.pop(0)
    stdin_is_tty = os.isatty(0)
    saved = termios.tcgetattr(0) if stdin_is_tty else None
    previous = signal.getsignal(signal.SIGWINCH)
    if stdin_is_tty:
        _copy_winsize(0, master)
        signal.signal(signal.SIGWINCH, lambda _s, _f: _copy_winsize(0, master))
        ttymod.setraw(0)
    sel = selectors.DefaultSelector()
    sel.register(master, selectors.EVENT_READ)
    sel.register(session.sock, selectors.EVENT_READ)
    stdin_open = True
    try:
        sel.register(0, selectors.EVENT_READ)
    except PermissionError:  # a regular file or /dev/null: cannot be polled, never blocks
        while data := os.read(0, 65536):
            os.write(master, data)
        os.write(master, b"\x04")
        stdin_open = False
    try:
        while True:
            ready = {key.fd for key, _ in sel.select()}
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if data:
                    os.write(1, data)
                else:
                    sel.unregister(master)
            if 0 in ready and stdin_open:
                data = os.read(0, 65536)
                if data:
                    os.write(master, data)
                else:
                    stdin_open = False
                    sel.unregister(0)
                    os.write(master, b"\x04")  # EOF to the program reading the tty
            if session.sock.fileno() in ready:
                session.receive()
                if session.ended:
                    _drain_to_stdout(master)
                    return
    finally:
        sel.close()
        os.close(master)
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
            signal.signal(signal.SIGWINCH, previous)


def _drain_to_stdout(master: int) -> None:
    os.set_blocking(master, False)
    buf = _Output(limit=None)
    _drain(master, buf)
    if buf.data:
        os.write(1, buf.data)
