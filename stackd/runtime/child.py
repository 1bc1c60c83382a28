"""The container's first process, between fork and exec.

The monitor forks this already inside the container's new PID namespace (so it is
PID 1 there). It makes its other namespaces, builds the root filesystem, makes its
cgroups, sets their limits and moves itself in, makes its cgroup namespace, reports
"created" on the ready pipe and blocks on the start pipe; on "start" it drops to the
container's user and executes the process. Anything that goes wrong is written to the
ready pipe as JSON and the process exits: this code never returns into the monitor's
loop.
"""

from __future__ import annotations

import fcntl
import json
import os
import resource
import signal
import struct
import termios
import time
import traceback
from dataclasses import dataclass, field

from stackd.errors import HostError, StackdError
from stackd.runtime import inroot, rootfs
from stackd.runtime import syscalls as sc
from stackd.runtime.exec_helper import close_all_but, open_console, set_rlimit
from stackd.runtime.execfail import EXIT_SETUP_FAILED, exec_failure, workdir_failure
from stackd.runtime.layout import ContainerPaths
from stackd.runtime.users import ResolvedUser, read_account_files, resolve_user

TYPE_CHECKING = False  # typing's, without importing typing: see specview
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from stackd.runtime.cgroups.base import CgroupManager
    from stackd.runtime.containerspec import ContainerSpec

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class ChildPipes:
    ready_w: int  # CLOEXEC: EOF after a successful exec
    start_r: int
    stdin: int
    stdout: int
    stderr: int
    tty: bool
    # With a TTY: the socket the pty master goes back to the monitor on. The pty is
    # opened inside, from the container's own devpts, so `tty` names /dev/pts/N there.
    console: int | None = None
    # `container:<id>` namespaces (Namespaces): kind → a descriptor of the other
    # container's, opened by the monitor while that container was known alive.
    namespaces: dict[str, int] = field(default_factory=dict)
    # With another's IPC namespace: that container's mount namespace, whose /dev/shm
    # (the IPC namespace's POSIX shared memory) this one mounts, as Docker does.
    shm_from: int | None = None


def _report(fd: int, error: BaseException) -> None:
    kind = type(error).__name__ if isinstance(error, StackdError) else "HostError"
    message = error.message if isinstance(error, StackdError) else str(error)
    hint = error.hint if isinstance(error, StackdError) else None
    data = {"error": message, "kind": kind, "hint": hint}
    if not isinstance(error, StackdError | OSError):
        data["trace"] = traceback.format_exc()
    try:
        os.write(fd, json.dumps(data).encode())
    except OSError:
        pass


# Said on the ready pipe, before the answer, by a setup that works on: the monitor
# gives it its time again (a named volume seeded from a large image directory).
STILL_SETTING_UP = b"."


class _Alive:
    """Says STILL_SETTING_UP at most once per `every` seconds, when called."""

    def __init__(self, fd: int, every: float) -> None:
        self.fd, self.every = fd, every
        self.next = time.monotonic() + every

    def __call__(self) -> None:
        now = time.monotonic()
        if now >= self.next:
            self.next = now + self.every
            try:
                os.write(self.fd, STILL_SETTING_UP)
            except OSError:
                pass  # the monitor went away: the next write of ours says so


def run(spec: ContainerSpec, paths: ContainerPaths, plan: Any, pipes: ChildPipes,
        cgroup: CgroupManager, *, nofile: tuple[int, int] | None = None,
        setup_timeout: float = 30.0) -> NoReturn:
    """nofile: the descriptor limit to give the container unless its spec sets one (the
    monitor runs with a raised limit of its own); setup_timeout: how long the monitor
    waits for a word from us."""
    code = EXIT_SETUP_FAILED
    try:
        code = _run(spec, paths, plan, pipes, cgroup, nofile, setup_timeout)
    except BaseException as e:  # report everything; never unwind into the monitor
        _report(pipes.ready_w, e)
    os._exit(code)


def _setns_path(path: str, nstype: int) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        sc.setns(fd, nstype)
    finally:
        os.close(fd)


def _namespaces(spec: ContainerSpec, held: dict[str, int]) -> None:
    ns = spec.namespaces
    flags = sc.CLONE_NEWNS
    for kind, value in (("net", ns.net), ("ipc", ns.ipc), ("uts", ns.uts)):
        if value == "new":
            flags |= sc.NAMESPACE_FLAGS[kind]
        elif kind in held:
            sc.setns(held[kind], sc.NAMESPACE_FLAGS[kind])
            os.close(held[kind])
        elif value != "host":
            _setns_path(value, sc.NAMESPACE_FLAGS[kind])
    sc.unshare(flags)
    if ns.net == "new":
        # Ours alone (network_mode none, --network none, a build's RUN): loopback only,
        # but up, as Docker gives it.
        sc.loopback_up()


def _run(spec: ContainerSpec, paths: ContainerPaths, plan: Any, pipes: ChildPipes,
         cgroup: CgroupManager, nofile: tuple[int, int] | None, setup_timeout: float) -> int:
    for sig in (signal.SIGCHLD, signal.SIGPIPE, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    sc.set_process_name("stackd-init")
    # The monitor's descriptors (its socket, other containers' pipes): a created
    # container waits here for a long time and must not keep them alive.
    close_all_but({pipes.ready_w, pipes.start_r, pipes.stdin, pipes.stdout, pipes.stderr,
                   *pipes.namespaces.values(),
                   *(fd for fd in (pipes.shm_from, pipes.console) if fd is not None)})
    if nofile is not None:  # only now: we held more descriptors than it allows
        resource.setrlimit(resource.RLIMIT_NOFILE, nofile)

    _namespaces(spec, pipes.namespaces)
    if spec.namespaces.uts != "host":
        if spec.hostname:
            sc.sethostname(spec.hostname)
        if spec.domainname:
            sc.setdomainname(spec.domainname)

    rootfs.setup_rootfs(spec, paths, shm_from=pipes.shm_from,
                        alive=_Alive(pipes.ready_w, setup_timeout / 4))
    # Here, not in the monitor: a v1 move waits for an RCU grace period (~1-20 ms),
    # and the monitor makes one container after another while children run side by
    # side. After the rootfs (its device nodes are made before the device rules hold),
    # before the pivot (the host's cgroup mounts are out of sight after it).
    cgroup.create()
    cgroup.apply(spec.resources, privileged=spec.security.privileged,
                 devices=spec.devices, rules=spec.device_cgroup_rules)
    cgroup.join(os.getpid())  # our pid in our own PID namespace: this process
    rootfs.pivot(paths.rootfs)
    security = _security()
    if security is not None and plan is not None:
        security.apply_sysctls(plan)
    rootfs.harden(spec)

    user = _resolve_user(spec)
    env = _environment(spec, user)
    os.chdir("/")
    try:
        if not os.path.isdir(spec.process.cwd):
            # A level at a time from a descriptor (os.makedirs recursed: an image's
            # WORKDIR 1,500 deep ended the start in "maximum recursion depth").
            root = inroot.open_root("/")  # after pivot_root: the container's own tree
            try:
                inroot.mkdir_all(root, spec.process.cwd).close()
            finally:
                os.close(root)
        os.chdir(spec.process.cwd)
    except OSError as err:  # the image's WORKDIR: a loop, a file, …
        raise workdir_failure(spec.process.cwd, err) from None
    for rl in spec.process.rlimits:
        set_rlimit(rl.type, rl.soft, rl.hard)
    if spec.process.oom_score_adj is not None:
        _set_oom_score_adj(spec.process.oom_score_adj)

    # After the move: the namespace's root is the cgroup it is made in.
    if spec.namespaces.cgroup != "host":
        sc.unshare(sc.CLONE_NEWCGROUP)
    if pipes.console is not None:
        # Before "R": the monitor takes the master when it hears that.
        slave = open_console(pipes.console)
        os.close(pipes.console)
        if spec.process.console_rows and spec.process.console_cols:
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack(
                "HHHH", spec.process.console_rows, spec.process.console_cols, 0, 0))
        pipes.stdin = pipes.stdout = pipes.stderr = slave
    # "created": the namespaces exist (networking may be attached now); wait for start.
    os.write(pipes.ready_w, b"R")
    if os.read(pipes.start_r, 1) != b"S":
        return 0  # the monitor went away or deleted us before start
    os.close(pipes.start_r)

    _stdio(pipes)
    args = list(spec.process.args)
    if spec.process.init:
        args = [rootfs.INIT_PATH, "--", *args]
    if security is not None and plan is not None:
        security.finalize_process(plan, user.uid, user.gid, list(user.groups))
    else:
        # TODO(security): stackd.runtime.security is not there yet; plain user switch.
        os.setgroups(list(user.groups))
        os.setgid(user.gid)
        os.setuid(user.uid)
    try:
        os.execvpe(args[0], args, env)
    except OSError as err:
        error, code = exec_failure(args[0], err)
        _report(pipes.ready_w, error)
        return code


def _security() -> Any:
    try:
        from stackd.runtime import security
    except ImportError:
        return None
    return security if hasattr(security, "finalize_process") else None


def _resolve_user(spec: ContainerSpec) -> ResolvedUser:
    return resolve_user(spec.process.user, spec.process.additional_groups,
                        *read_account_files())


def _environment(spec: ContainerSpec, user: ResolvedUser) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in spec.process.env:
        key, _, value = item.partition("=")
        env[key] = value
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("HOSTNAME", spec.hostname or os.uname().nodename)
    env.setdefault("HOME", user.home or "/")
    if spec.process.terminal:
        env.setdefault("TERM", "xterm")
    return env


def _set_oom_score_adj(value: int) -> None:
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(value))
    except PermissionError:
        raise HostError(f"cannot set oom_score_adj {value}: lowering it needs "
                        "CAP_SYS_RESOURCE, which this host's root lacks",
                        hint="leave oom_score_adj out, or give 0 or more") from None
    except OSError as e:
        raise HostError(f"cannot set oom_score_adj {value}: {e.strerror}") from None


def _stdio(pipes: ChildPipes) -> None:
    os.setsid()
    os.dup2(pipes.stdin, 0)
    os.dup2(pipes.stdout, 1)
    os.dup2(pipes.stderr, 2)
    for fd in {pipes.stdin, pipes.stdout, pipes.stderr}:
        if fd > 2:
            os.close(fd)
    if pipes.tty:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
