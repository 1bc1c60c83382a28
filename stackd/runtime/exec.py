"""exec: start a new process inside a running container.

The process joins every namespace of the container's first process (through
/proc/<pid>/ns/*), its cgroups (read from /proc/<pid>/cgroup), and gets the same
capabilities, seccomp filter and no_new_privs (`security.prepare` on the container's
spec, `finalize_process` in the child), the container's user unless overridden, its
environment plus overrides, and its working directory.

Process tree: joining a PID namespace only affects children, so the caller forks a
helper that joins the container's PID namespace and forks the real process (PID n
inside), then waits for it and exits with its status. The process moves itself into
the cgroups and the other namespaces; the helper stays out of the container's cgroups
and so out of its pids limit. The process gets PR_SET_PDEATHSIG, so killing the
helper (a cancelled exec) kills it too. With a TTY, the process opens a pty from the
container's own devpts (so `tty` inside names /dev/pts/N) and passes the master back
over a socketpair, as runc's console socket does.

Everything the children run is os + ctypes calls on objects made before fork: no
imports, no threads, no locks — it is safe to fork from the trio thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import selectors
import signal
import socket
import struct
import sys
import termios
import tty as ttymod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import trio

from stackd.errors import ConflictError, HostError, StackdError
from stackd.runtime import protocol
from stackd.runtime.cgroups import parse_mounts
from stackd.runtime.model import ContainerState
from stackd.runtime.security import SecurityPlan, finalize_process, prepare
from stackd.runtime.security import kernel as k
from stackd.runtime.users import resolve_user

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
EXIT_SETUP_FAILED = 125
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127
# Joined in this order (pid by the helper, the rest by the process): mnt last, since it
# moves our root into the container; the fds were all opened beforehand.
NAMESPACE_ORDER = (("ipc", k.CLONE_NEWIPC), ("uts", k.CLONE_NEWUTS), ("net", k.CLONE_NEWNET),
                   ("cgroup", k.CLONE_NEWCGROUP), ("pid", k.CLONE_NEWPID),
                   ("mnt", k.CLONE_NEWNS))
TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class ExecResult:
    exit_code: int  # 128+N if killed by signal N; 126/127 when the command could not run
    stdout: bytes
    stderr: bytes  # with a TTY, both streams arrive on stdout, as on a terminal


@dataclass(frozen=True, slots=True)
class _Request:
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


@dataclass(slots=True)
class _Spawned:
    helper_pid: int
    pidfd: int
    errors_r: int  # the process writes a JSON error here if it could not exec
    console: socket.socket | None  # receives the pty master when tty


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


def exec_environment(spec_env: Iterable[str], overrides: Iterable[str], *, hostname: str,
                     home: str, tty: bool) -> dict[str, str]:
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


def _env_items(env: Sequence[str] | Mapping[str, str]) -> tuple[str, ...]:
    if isinstance(env, Mapping):
        return tuple(f"{key}={value}" for key, value in env.items())
    return tuple(env)


def _request(state: ContainerState, args: Sequence[str], env: Sequence[str] | Mapping[str, str],
             cwd: str | None, user: str | None, tty: bool) -> _Request:
    if state.status != "running" or not state.pid:
        raise ConflictError(f"container {state.name} ({state.id}) is not running",
                            hint="start it first")
    if not args:
        raise StackdError("exec needs a command", hint="give the program and its arguments")
    spec = state.spec
    return _Request(
        pid=state.pid, plan=prepare(spec), args=tuple(args), env_overrides=_env_items(env),
        cwd=cwd or spec.process.cwd or "/", spec_env=spec.process.env,
        user=spec.process.user if user is None else user,
        additional_groups=spec.process.additional_groups,
        hostname=spec.hostname, tty=tty)


def _spawn(req: _Request, stdin: int, stdout: int, stderr: int) -> _Spawned:
    """Open what the children need, then fork the helper. Runs in the caller."""
    try:
        pidfd = os.pidfd_open(req.pid)
    except ProcessLookupError:
        raise ConflictError(f"the container's process {req.pid} is gone",
                            hint="the container has exited") from None
    ns_fds: list[tuple[int, int]] = []
    procs: list[int] = []
    try:
        own = {kind: os.stat(f"/proc/self/ns/{kind}").st_ino for kind, _ in NAMESPACE_ORDER}
        for kind, flag in NAMESPACE_ORDER:
            path = f"/proc/{req.pid}/ns/{kind}"
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            if os.fstat(fd).st_ino == own[kind]:
                os.close(fd)  # shared with us (network_mode: host…): nothing to join
                continue
            ns_fds.append((fd, flag))
        with open(f"/proc/{req.pid}/cgroup") as f, open("/proc/self/mounts") as m:
            dirs = cgroup_dirs(f.read(), m.read())
        for d in dirs:
            # Opened here, written by the process itself once forked: the helper that
            # waits for it stays out of the container's cgroups (and its pids limit).
            procs.append(os.open(os.path.join(d, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC))
    except OSError as err:
        for fd in [*(fd for fd, _ in ns_fds), *procs]:
            os.close(fd)
        os.close(pidfd)
        raise ConflictError(f"cannot enter the container's process {req.pid}: "
                            f"{err.strerror}", hint="the container may have just exited") from None
    # Decide the user before fork only as far as is pure; names are resolved inside,
    # against the container's own /etc files.
    errors_r, errors_w = os.pipe2(os.O_CLOEXEC)
    console_parent = console_child = None
    if req.tty:
        console_parent, console_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    helper = os.fork()
    if helper == 0:  # pragma: no cover - runs in the child
        _helper(req, ns_fds, procs, (stdin, stdout, stderr), errors_w, console_child)
    for fd in [*(fd for fd, _ in ns_fds), *procs]:
        os.close(fd)
    os.close(errors_w)
    if console_child is not None:
        console_child.close()
    helper_fd = os.pidfd_open(helper)
    os.close(pidfd)
    return _Spawned(helper_pid=helper, pidfd=helper_fd, errors_r=errors_r,
                    console=console_parent)


def _report(fd: int, error: BaseException, code: int) -> None:
    if isinstance(error, StackdError):
        data = protocol.error_reply(error)
    else:
        data = {"ok": False, "kind": "HostError", "error": str(error), "hint": None}
    data["exit"] = code
    with contextlib.suppress(OSError):
        os.write(fd, json.dumps(data).encode())


def _helper(req: _Request, ns_fds: list[tuple[int, int]], procs: list[int],
            stdio: tuple[int, int, int], errors_w: int,
            console: socket.socket | None) -> NoReturn:  # pragma: no cover - child
    code = EXIT_SETUP_FAILED
    try:
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        # fork copied every fd of the caller (CLOEXEC or not): the write end of the
        # process's stdin pipe among them, which would keep it from ever seeing EOF.
        keep = {0, 1, 2, errors_w, *stdio, *procs, *(fd for fd, _ in ns_fds)}
        if console is not None:
            keep.add(console.fileno())
        _close_all_but(keep)
        # Joining a PID namespace only places our children in it; the process joins
        # everything else itself.
        for fd, flag in ns_fds:
            if flag == k.CLONE_NEWPID:
                k.setns(fd, flag)
        child = os.fork()
        if child == 0:
            _process(req, [ns for ns in ns_fds if ns[1] != k.CLONE_NEWPID], procs, stdio,
                     errors_w, console)
        _close_all_but({0, 1, 2})
        # Pass on the signals a caller uses to stop the exec.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                    signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH):
            signal.signal(sig, lambda s, _f: os.kill(child, s))
        _, status = os.waitpid(child, 0)
        code = os.waitstatus_to_exitcode(status)
        code = 128 - code if code < 0 else code
    except BaseException as err:  # never unwind into the caller's code
        _report(errors_w, err, code)
    os._exit(code)


def _close_all_but(keep: set[int]) -> None:
    low = 3
    for fd in sorted(f for f in keep if f >= 3):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, max(os.sysconf("SC_OPEN_MAX"), 1 << 16))


def _open_console(console: socket.socket) -> int:  # pragma: no cover - child
    """A pty from the container's devpts; the master goes to the caller, the slave is
    returned."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    n = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0\0\0\0"))[0]
    slave = os.open(f"/dev/pts/{n}", os.O_RDWR | os.O_NOCTTY)
    socket.send_fds(console, [b"m"], [master])
    os.close(master)
    console.close()
    return slave


def _process(req: _Request, ns_fds: list[tuple[int, int]], procs: list[int],
             stdio: tuple[int, int, int], errors_w: int,
             console: socket.socket | None) -> NoReturn:  # pragma: no cover - child
    code = EXIT_SETUP_FAILED
    try:
        k.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        # Cgroups before the cgroup namespace: from inside it, cgroup2 would refuse a
        # move from a cgroup outside its root.
        for fd in procs:
            os.write(fd, b"0")
            os.close(fd)
        for fd, flag in ns_fds:
            k.setns(fd, flag)
            os.close(fd)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                    signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH):
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        # setns(mnt) put us at the root of the container's mount namespace, so these
        # are the container's own files.
        os.chdir("/")
        user = resolve_user(req.user, req.additional_groups, _read("/etc/passwd"),
                            _read("/etc/group"))
        env = exec_environment(req.spec_env, req.env_overrides, hostname=req.hostname,
                               home=user.home, tty=req.tty)
        os.setsid()
        if console is not None:
            slave = _open_console(console)
            os.fchown(slave, user.uid, -1)
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
            stdio = (slave, slave, slave)
        for target, fd in enumerate(stdio):
            if fd != target:
                os.dup2(fd, target)
        os.set_inheritable(errors_w, False)
        _close_all_but({errors_w})
        try:
            os.chdir(req.cwd)
        except OSError as err:
            raise HostError(f"cannot use working directory {req.cwd!r} in the container: "
                            f"{err.strerror}", hint="give an existing directory") from None
        finalize_process(req.plan, user.uid, user.gid, list(user.groups))
        # Changing uid clears the parent-death signal; set it again (a custom seccomp
        # profile may refuse prctl: then a killed helper leaves the process running).
        with contextlib.suppress(OSError):
            k.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        try:
            os.execvpe(req.args[0], list(req.args), env)
        except FileNotFoundError:
            code = EXIT_NOT_FOUND
            raise HostError(f"cannot run {req.args[0]!r}: no such file in the container's "
                            "PATH", hint="check the command") from None
        except PermissionError:
            code = EXIT_NOT_EXECUTABLE
            raise HostError(f"cannot run {req.args[0]!r}: permission denied",
                            hint="check the file's mode and the user") from None
    except BaseException as err:  # report everything, never unwind
        _report(errors_w, err, code)
    os._exit(code)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


# ---- the caller's side -------------------------------------------------------------


def _read_errors(fd: int) -> dict[str, Any] | None:
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(fd)
    if not chunks:
        return None
    try:
        report: dict[str, Any] = json.loads(b"".join(chunks))
        return report
    except ValueError:
        return {"ok": False, "kind": "HostError", "error": "exec failed", "hint": None,
                "exit": EXIT_SETUP_FAILED}


def _outcome(report: dict[str, Any] | None, code: int) -> str | None:
    """Raise the child's setup error, or return the message of a command that could
    not run (its exit code 126/127 is the result, as in a shell)."""
    if report is None:
        return None
    if report.get("exit") in (EXIT_NOT_FOUND, EXIT_NOT_EXECUTABLE) and code == report["exit"]:
        return str(report.get("error"))
    protocol.raise_error(report)
    return None


def _nonblocking(fd: int) -> None:
    os.set_blocking(fd, False)


async def _pump_out(fd: int, buf: bytearray) -> None:
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
        buf += data


def _drain(fd: int, buf: bytearray) -> None:
    while True:
        try:
            data = os.read(fd, 65536)
        except (BlockingIOError, OSError):
            return
        if not data:
            return
        buf += data


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


async def _receive_master(console: socket.socket) -> int | None:
    await trio.lowlevel.wait_readable(console.fileno())
    _, fds, _, _ = socket.recv_fds(console, 16, 1)
    console.close()
    return fds[0] if fds else None


def _kill_and_reap(spawned: _Spawned) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(spawned.helper_pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(spawned.helper_pid, 0)
    os.close(spawned.pidfd)


async def exec_in(
    state: ContainerState, args: Sequence[str], *, env: Sequence[str] | Mapping[str, str] = (),
    cwd: str | None = None, user: str | None = None, tty: bool = False,
    stdin: bytes | None = None, capture: bool = True,
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
    req = _request(state, args, env, cwd, user, tty)
    out, err = bytearray(), bytearray()
    parent_fds: list[int] = []
    child_fds: list[int] = []
    stdin_w: int | None = None
    if tty:
        stdio = (0, 1, 2)  # replaced by the pty in the child
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
        spawned = _spawn(req, *stdio)
    finally:
        for fd in child_fds:
            os.close(fd)
    master: int | None = None
    try:
        async with trio.open_nursery() as nursery:
            if tty:
                assert spawned.console is not None
                master = await _receive_master(spawned.console)
                if master is not None:
                    _nonblocking(master)
                    if capture:
                        nursery.start_soon(_pump_out, master, out)
                    if stdin is not None:
                        nursery.start_soon(_pump_in, master, stdin, False)
            else:
                if capture:
                    nursery.start_soon(_pump_out, parent_fds[0], out)
                    nursery.start_soon(_pump_out, parent_fds[1], err)
                if stdin_w is not None:
                    nursery.start_soon(_pump_in, stdin_w, stdin or b"", True)
                    stdin_w = None
            await trio.lowlevel.wait_readable(spawned.pidfd)
            _, status = os.waitpid(spawned.helper_pid, 0)
            os.close(spawned.pidfd)
            spawned.pidfd = -1
            # Whatever the process wrote is in the pipes now; a background process
            # still holding them open must not keep us waiting.
            nursery.cancel_scope.cancel()
    except BaseException:
        if spawned.pidfd != -1:
            _kill_and_reap(spawned)
        raise
    finally:
        for fd in parent_fds:
            _drain(fd, out if fd == parent_fds[0] else err)
            os.close(fd)
        if master is not None:
            _drain(master, out)
            os.close(master)
        if stdin_w is not None:
            os.close(stdin_w)
    code = os.waitstatus_to_exitcode(status)
    code = 128 - code if code < 0 else code
    message = _outcome(_read_errors(spawned.errors_r), code)
    if message:
        err += (message + "\n").encode()
    return ExecResult(exit_code=code, stdout=bytes(out), stderr=bytes(err))


def exec_interactive(
    state: ContainerState, args: Sequence[str], *, env: Sequence[str] | Mapping[str, str] = (),
    cwd: str | None = None, user: str | None = None, tty: bool = False,
) -> int:
    """`stackd exec`: run attached to this process's terminal; returns the exit code.

    Without a TTY the process gets our stdin/stdout/stderr directly. With one, our
    terminal goes raw and is relayed to the container's pty (window size included)
    until the process exits.
    """
    req = _request(state, args, env, cwd, user, tty)
    spawned = _spawn(req, 0, 1, 2)
    if not tty:
        _, status = os.waitpid(spawned.helper_pid, 0)
    else:
        status = _relay_terminal(spawned)
    os.close(spawned.pidfd)
    code = os.waitstatus_to_exitcode(status)
    code = 128 - code if code < 0 else code
    message = _outcome(_read_errors(spawned.errors_r), code)
    if message:
        sys.stderr.write(message + "\n")
    return code


def _copy_winsize(src: int, dst: int) -> None:
    with contextlib.suppress(OSError):
        size = fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst, termios.TIOCSWINSZ, size)


def _relay_terminal(spawned: _Spawned) -> int:
    assert spawned.console is not None
    _, fds, _, _ = socket.recv_fds(spawned.console, 16, 1)
    spawned.console.close()
    if not fds:
        return os.waitpid(spawned.helper_pid, 0)[1]
    master = fds[0]
    stdin_is_tty = os.isatty(0)
    saved = termios.tcgetattr(0) if stdin_is_tty else None
    previous = signal.getsignal(signal.SIGWINCH)
    if stdin_is_tty:
        _copy_winsize(0, master)
        signal.signal(signal.SIGWINCH, lambda _s, _f: _copy_winsize(0, master))
        ttymod.setraw(0)
    sel = selectors.DefaultSelector()
    sel.register(master, selectors.EVENT_READ)
    sel.register(spawned.pidfd, selectors.EVENT_READ)
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
                elif spawned.pidfd in ready or not data:
                    sel.unregister(master)
            if 0 in ready and stdin_open:
                data = os.read(0, 65536)
                if data:
                    os.write(master, data)
                else:
                    stdin_open = False
                    sel.unregister(0)
                    os.write(master, b"\x04")  # EOF to the program reading the tty
            if spawned.pidfd in ready:
                _drain_to_stdout(master)
                return os.waitpid(spawned.helper_pid, 0)[1]
    finally:
        sel.close()
        os.close(master)
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
            signal.signal(signal.SIGWINCH, previous)


def _drain_to_stdout(master: int) -> None:
    os.set_blocking(master, False)
    buf = bytearray()
    _drain(master, buf)
    if buf:
        os.write(1, buf)
