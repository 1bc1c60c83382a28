"""The monitor: one small process per state root that owns every container's lifetime.

It is started on demand by `Runtime` (`python -m stackd.runtime.monitor`), detaches
(new session, double fork) so it outlives whoever started it, and is the parent of
every container's PID 1 (also a child subreaper, so nothing escapes it). Its own
parent is the keeper (keeper.py), which records the exits of its containers should
it be killed; a new monitor then adopts them (adopt()). It:

- forks containers (so starting one costs a fork of this already-imported process,
  not a Python start-up), inside a new PID namespace made just for that fork;
- reads their stdout/stderr pipes into JSON-lines logs;
- reaps them and records the exit status (and OOM kill) under the run dir;
- answers requests on `run/monitor.sock` (see protocol.py).

It is single-threaded on purpose: forking from a threaded process is unsafe. It exits
by itself once it holds no container and no client, so a test root or a `down`
leaves no process behind. Its state is all on disk; a client never needs it to list
or inspect containers, only to change them.
"""

from __future__ import annotations

import base64
import json
import os
import resource
import select
import selectors
import signal
import socket
import stat
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from stackd import detached
from stackd.errors import (
    AlreadyExistsError,
    ConflictError,
    HostError,
    NotFoundError,
    StackdError,
    UsageError,
    disk_full,
)
from stackd.filemodes import private_dir, write_private
from stackd.repeats import Repeats, with_count
from stackd.roots import Roots
from stackd.runtime import child, containerdirs, protocol, specview
from stackd.runtime import syscalls as sc
from stackd.runtime.cgroups import CgroupManager, manager_for, remove_root_parents
from stackd.runtime.devices import resolve_devices
from stackd.runtime.keeper import parse_args
from stackd.runtime.layout import ContainerPaths, MonitorPaths, containers_dir
from stackd.runtime.logfile import LogWriter, log_files
from stackd.runtime.model import ExitStatus
from stackd.runtime.signals import signal_number
from stackd.runtime.specview import dump_spec, load_spec
from stackd.runtime.statefile import (
    check_records,
    is_alive,
    now_iso,
    process_start_time,
    read_json,
    write_json,
)
from stackd.trees import remove_tree

TYPE_CHECKING = False  # typing's, without importing typing: see specview
if TYPE_CHECKING:
    from typing import Any

    from stackd.runtime.containerspec import ContainerSpec

IDLE_EXIT_SECONDS = 1.0
# A client must send its whole request this soon after connecting (ours send it at
# once); one that stalls is dropped, so it cannot keep an idle monitor alive forever.
CLIENT_STALL_SECONDS = 3.0
MAX_REQUEST = 16 * 1024 * 1024
# Bytes read from one container's output per wake-up. Reading a chatty container's pipe
# until it is empty never ends (it refills as fast as we read), and would starve every
# other container and client; epoll is level-triggered, so the rest waits for the next
# round. At an exit, the pipe is drained up to DRAIN_BUDGET: all it can hold.
PUMP_BUDGET = 256 * 1024
DRAIN_BUDGET = 4 * 1024 * 1024
ATTACH_BACKLOG = 1024 * 1024
TRASH_PREFIX = ".deleted-"
# How long a container's setup may go without a word from its first process: it
# says "." on its ready pipe while it works on (a named volume's seeding from a large
# image directory), and each word extends its time (STACKD_SETUP_TIMEOUT: seconds).
SETUP_TIMEOUT = float(os.environ.get("STACKD_SETUP_TIMEOUT") or 30.0)
# How long a new monitor waits for the keeper to record an adopted container's exit.
KEEPER_WAIT_SECONDS = 0.5

# A SIGKILLed adopted container is gone within moments; bounded, so a process stuck
# in the kernel never stalls the monitor.
KILLED_WAIT_SECONDS = 20.0


@dataclass
class SharedNamespaces:
    """Descriptors of another container's namespaces a new one joins: `joined` by
    kind (pid is joined before the fork, the rest by the child), and `shm_from`, the
    mount namespace whose /dev/shm goes with a joined IPC namespace."""

    joined: dict[str, int] = field(default_factory=dict)
    shm_from: int | None = None

    def close(self) -> None:
        for fd in [*self.joined.values(), *([] if self.shm_from is None else [self.shm_from])]:
            _close(fd)
        self.joined.clear()
        self.shm_from = None


@dataclass
class Container:
    spec: ContainerSpec
    paths: ContainerPaths
    cgroup: CgroupManager
    pid: int
    pidfd: int
    start_w: int | None
    ready_r: int | None
    log: LogWriter
    streams: dict[int, str] = field(default_factory=dict)  # open output fd → stream name
    console: int | None = None  # where the child sends its pty master (a TTY container)
    master: int | None = None  # that master, once received (also in `streams`)
    stdin_w: int | None = None  # stdin_open without a TTY: the write end, until attached
    attached: list[Client] = field(default_factory=list)  # clients `attach` streams to
    # stdin_open: output from the start until the first attach (ATTACH_BACKLOG at most)
    backlog: list[tuple[str, bytes]] | None = None
    exit: ExitStatus | None = None
    waiters: list[Client] = field(default_factory=list)
    # Left running by a monitor that was killed, and taken over by this one: not our
    # child, so its exit is seen through the pidfd and its status read from the record
    # the old monitor's keeper makes.
    adopted: bool = False
    # A respawn's: when the container was first made (Docker's Created survives a
    # restart); None: now, at the end of its create.
    created_at: str | None = None


@dataclass
class Pending:
    """A create or start whose answer comes from the child on its ready pipe. The
    monitor serves everyone else meanwhile, so many containers set up at once."""
    c: Container
    client: Client
    want: bytes  # b"R": the rootfs is ready (create); b"": the exec happened (start)
    deadline: float
    data: bytes = b""


@dataclass
class Client:
    sock: socket.socket
    buf: bytes = b""
    since: float = field(default_factory=time.monotonic)
    waiting_on: Container | None = None  # a `wait` request, answered at the exit


class Monitor:
    def __init__(self, roots: Roots) -> None:
        self.roots = roots
        self.mpaths = MonitorPaths(roots.run)
        self.sel = selectors.DefaultSelector()
        self.containers: dict[str, Container] = {}
        self.by_pid: dict[int, Container] = {}
        self.clients: dict[int, Client] = {}
        self.pending: dict[int, Pending] = {}  # ready-pipe fd → the request it answers
        self.holders: list[Client] = []  # connections that keep us up while idle
        self.idle_since: float | None = time.monotonic()
        self.own_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        self.devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        self.security = _security_module()
        self.stopping = False
        # The descriptor limit containers get unless their spec sets one: what we were
        # started with, before we raised ours.
        self.container_nofile: tuple[int, int] | None = None
        # Deleted containers' directories, renamed away at once and removed when idle.
        self.trash: list[Path] = []
        self._sweep_leftover_trash()
        # The same failure many times a second (a full disk under a restart loop) is
        # logged once a minute with a count: our log lives on a disk too.
        self.repeats = Repeats()
        self.keeper: socket.socket | None = None  # to our keeper (keeper.py)

    def complain(self, key: str, message: str, *, trace: bool = False) -> None:
        repeated = self.repeats.admit(key)
        if repeated is None:
            return
        if trace:
            traceback.print_exc()
        sys.stderr.write(f"monitor: {with_count(message, repeated)}\n")
        sys.stderr.flush()

    # ---- setup and main loop -------------------------------------------------------

    def bind(self) -> socket.socket:
        try:
            self.mpaths.socket.unlink()
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.mpaths.socket))
        os.chmod(self.mpaths.socket, 0o600)
        listener.listen(socket.SOMAXCONN)  # creates queue up while one runs
        listener.setblocking(False)
        self.sel.register(listener, selectors.EVENT_READ, ("listen", None))
        return listener

    def serve(self, listener: socket.socket) -> None:
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        # A session leader gets SIGHUP when its controlling terminal goes away. We open
        # every pty with O_NOCTTY so we never have one, and ignore the signal anyway:
        # its default action would end every container's monitor. (Children reset it.)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.set_wakeup_fd(wake_w)
        self.sel.register(wake_r, selectors.EVENT_READ, ("signal", None))
        self.reap()
        while True:
            timeout = 0 if self.trash else IDLE_EXIT_SECONDS / 2
            if self.pending:
                soonest = min(p.deadline for p in self.pending.values())
                timeout = max(0.0, min(timeout, soonest - time.monotonic()))
            events = self.sel.select(timeout=timeout)
            if not events and self.trash:
                remove_tree(self.trash.pop(), ignore_errors=True)
                continue
            for key, _ in events:
                if self.sel.get_map().get(key.fd) is not key:
                    # Unregistered by an earlier event of this batch (a delete closed
                    # the pipe, a client was dropped), maybe its number reused already.
                    continue
                try:
                    self.dispatch(key, listener, wake_r)
                except Exception as e:  # one container's trouble must not end the others' monitor
                    self.complain_about(e)
            self.drop_stalled_clients()
            self.expire_pending()
            if self.stopping and not self.containers:
                self.shutdown(listener)
                return
            if self.containers or self.clients or self.holders:
                self.idle_since = None
            elif self.idle_since is None:
                self.idle_since = time.monotonic()
            elif time.monotonic() - self.idle_since > IDLE_EXIT_SECONDS:
                self.shutdown(listener)
                return

    def dispatch(self, key: selectors.SelectorKey, listener: socket.socket,
                 wake_r: int) -> None:
        kind, obj = key.data
        if kind == "listen":
            self.accept(listener)
        elif kind == "signal":
            try:
                os.read(wake_r, 4096)
            except BlockingIOError:
                pass
            self.reap()
        elif kind == "output":
            self.pump(obj, key.fd)
        elif kind == "client":
            self.on_client(obj)
        elif kind == "waiter":
            self.on_waiter(obj)
        elif kind == "ready":
            self.on_ready(obj)
        elif kind == "adopted":
            self.on_adopted_exit(obj)

    def shutdown(self, listener: socket.socket) -> None:
        # Unlink first: a client arriving now finds no socket and starts a new monitor,
        # which waits for our lock.
        for p in (self.mpaths.socket, self.mpaths.pidfile):
            try:
                p.unlink()
            except FileNotFoundError:
                pass
        listener.close()
        while self.trash:
            remove_tree(self.trash.pop(), ignore_errors=True)
        remove_root_parents(self.roots.id)

    def _discard(self, paths: ContainerPaths, keep_logs: bool = False, *,
                 run_dir: bool = True, keep_layer: bool = False) -> None:
        """Make a deleted container's directories disappear now (a rename) and remove
        them when there is nothing else to do: a deep upper dir can take a while.

        keep_logs (a restart: delete, then create the same id): the log files move back
        into a fresh state dir, same inodes, so the next create appends to them and a
        follower's offset stays valid. run_dir=False: the run dir stays (respawn).
        keep_layer: the upper dir moves back too (a restart that keeps the layer)."""
        for d in (paths.run_dir, paths.state_dir) if run_dir else (paths.state_dir,):
            if d.exists():
                target = d.with_name(f"{TRASH_PREFIX}{d.name}-{os.urandom(4).hex()}")
                os.rename(d, target)
                self.trash.append(target)
                if keep_logs and d == paths.state_dir:
                    kept = log_files(target / paths.log.name)
                    if kept:
                        private_dir(d)
                        for f in kept:
                            os.rename(f, d / f.name)
                if keep_layer and d == paths.state_dir and (target / "upper").is_dir():
                    private_dir(d)
                    os.rename(target / "upper", paths.upper)

    def _sweep_leftover_trash(self) -> None:
        for base in (self.roots.run / "containers", self.roots.state / "containers"):
            if base.is_dir():
                self.trash += [e for e in base.iterdir() if e.name.startswith(TRASH_PREFIX)]

    # ---- clients -----------------------------------------------------------------

    def accept(self, listener: socket.socket) -> None:
        try:
            conn, _ = listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        except OSError as e:  # out of descriptors: the client waits in the backlog
            sys.stderr.write(f"monitor: cannot accept a client: {e}\n")
            time.sleep(0.05)  # the listener stays readable; do not spin on it
            return
        conn.setblocking(False)
        client = Client(conn)
        self.clients[conn.fileno()] = client
        self.sel.register(conn, selectors.EVENT_READ, ("client", client))

    def drop(self, client: Client) -> None:
        fd = client.sock.fileno()
        if fd >= 0:
            key = self.sel.get_map().get(fd)
            if key is not None and key.data[1] is client:
                self.sel.unregister(fd)
            if self.clients.get(fd) is client:
                del self.clients[fd]
        if client in self.holders:
            self.holders.remove(client)
        c = client.waiting_on
        if c is not None and client in c.waiters:
            c.waiters.remove(client)
        if c is not None and client in c.attached:
            c.attached.remove(client)
        client.waiting_on = None
        client.sock.close()

    def drop_stalled_clients(self) -> None:
        now = time.monotonic()
        for client in [cl for cl in self.clients.values()
                       if now - cl.since > CLIENT_STALL_SECONDS]:
            self.drop(client)

    def on_waiter(self, client: Client) -> None:
        """A client waiting for an exit has nothing more to say: readable means it hung
        up (or broke the protocol); either way it no longer waits."""
        try:
            if client.sock.recv(4096):
                raise ConnectionError
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self.drop(client)

    def on_client(self, client: Client) -> None:
        try:
            data = client.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.drop(client)
            return
        client.buf += data
        if b"\n" not in client.buf:
            if len(client.buf) > MAX_REQUEST:
                self.reply(client, protocol.error_reply(UsageError(
                    f"runtime monitor: request longer than {MAX_REQUEST} bytes")))
            return
        line, _, client.buf = client.buf.partition(b"\n")
        try:
            reply = self.handle(protocol.decode_request(line), client)
        except StackdError as e:
            reply = protocol.error_reply(e)
        except Exception as e:  # a bug must not take every container down: log, answer
            typed = self.complain_about(e)
            reply = protocol.error_reply(typed or HostError(
                f"runtime monitor: {type(e).__name__}: {e}"))
        if reply is not None:
            self.reply(client, reply)

    def complain_about(self, e: Exception) -> StackdError | None:
        """Log an unexpected exception, at most once a minute per kind; a full disk is
        said in one line (its typed error, returned), anything else with its trace."""
        typed = disk_full(e)
        if typed is not None:
            self.complain("disk-full", typed.message)
        else:
            self.complain(f"{type(e).__name__}: {e}", f"{type(e).__name__}: {e}", trace=True)
        return typed

    def reply(self, client: Client, message: dict[str, Any]) -> None:
        # The client may be gone (killed mid-request): the work stands, the reply is lost.
        try:
            client.sock.settimeout(5)  # a client that stopped reading must not wedge us
            client.sock.sendall(protocol.encode(message))
        except OSError:
            pass
        self.drop(client)

    def handle(self, request: dict[str, Any], client: Client) -> dict[str, Any] | None:
        op = request.get("op")
        if op == "ping":
            return {"ok": True, "pid": os.getpid(), "schema": specview.schema_digest()}
        if op == "hold":
            # A daemon's standing connection: no answer; while it is open we do not exit
            # when idle, so its next `up` does not wait ~0.4 s for a new monitor. It
            # ends when the daemon goes (EOF) or we are asked to shut down.
            self.clients.pop(client.sock.fileno(), None)
            self.sel.modify(client.sock, selectors.EVENT_READ, ("waiter", client))
            self.holders.append(client)
            return None
        if op == "shutdown":
            if self.containers:
                raise ConflictError(f"the monitor still holds {len(self.containers)} containers",
                                    hint="delete them first")
            self.stopping = True
            return {"ok": True}
        if op == "create":  # answered once the child has set up (or says why not)
            self.create(protocol.request_spec(request), client)
            return None
        if op == "respawn":  # as create
            self.respawn(protocol.request_spec(request), client,
                         keep_layer=request.get("keep_layer") is True)
            return None
        cid = protocol.request_id(request)
        if op == "start":  # answered once the child has exec'd
            self.start(self.get(cid), client)
            return None
        if op == "kill":
            return self.kill(self.get(cid), request.get("signal", "SIGTERM"))
        if op == "wait":
            c = self.containers.get(cid)
            if c is None:
                recorded = read_json(ContainerPaths(self.roots, cid).exit)
                if recorded is None:
                    raise NotFoundError(f"no container {cid!r}")
                return {"ok": True, "exit": recorded}
            if c.exit is not None:
                return {"ok": True, "exit": c.exit.to_json()}
            # Still watched, so a waiter that hangs up is closed now, not at the exit.
            self.clients.pop(client.sock.fileno(), None)
            self.sel.modify(client.sock, selectors.EVENT_READ, ("waiter", client))
            client.waiting_on = c
            c.waiters.append(client)
            return None
        if op == "attach":
            self.attach(self.get(cid), client)
            return None
        if op == "delete":
            return self.delete(cid, bool(request.get("force")),
                               keep_logs=bool(request.get("keep_logs")))
        if op == "repair":
            return {"ok": True, "repaired": self.repair(ContainerPaths(self.roots, cid))}
        raise UsageError(f"runtime monitor: unknown request {op!r}",
                         hint="use create, respawn, start, kill, wait, attach, delete, "
                         "repair, ping, hold or shutdown")

    def get(self, cid: str) -> Container:
        c = self.containers.get(cid)
        if c is None:
            raise NotFoundError(f"no container {cid!r}",
                                hint="list containers with `stackd ps -a`")
        return c

    # ---- lifecycle ---------------------------------------------------------------

    def create(self, spec: ContainerSpec, client: Client, *, respawn: bool = False) -> None:
        paths = ContainerPaths(self.roots, spec.id)
        if spec.id in self.containers or (paths.run_dir.exists() and not respawn):
            raise AlreadyExistsError(f"container {spec.id!r} already exists",
                                     hint="delete it first, or pick another id")
        for layer in spec.layers:
            if not os.path.isdir(layer):
                raise NotFoundError(f"layer directory {layer} of container {spec.id!r} "
                                    "does not exist", hint="unpack the image first")
        spec = resolve_devices(spec)  # once: the /dev node and the cgroup rule agree
        plan = self.security.prepare(spec) if self.security is not None else None
        cgroup = manager_for(self.roots.id, spec.id)
        made: list[int] = []
        shared = self._shared_namespaces(spec)
        try:
            containerdirs.make(spec, paths, run_dir_kept=respawn)
            write_json(paths.spec, dump_spec(spec))
            write_json(paths.spec_copy, dump_spec(spec))  # 0600, as the spec
            c = self._fork(spec, paths, plan, cgroup, made, shared)
        except BaseException:
            for fd in made:
                _close(fd)
            _remove_container_files(paths)
            try:
                cgroup.kill_all()
                cgroup.destroy()
            except StackdError:
                pass
            raise
        finally:
            shared.close()
        self.containers[spec.id] = c
        self.by_pid[c.pid] = c
        assert c.ready_r is not None
        self._await_child(c, client, want=b"R")

    def _shared_namespaces(self, spec: ContainerSpec) -> SharedNamespaces:
        """A descriptor of each `container:<id>` namespace of the spec: another
        container's (Compose's `pid: service:x`, `ipc: service:x`). Opened here, while
        that container is seen alive, so a pid that ended and was reused by the time
        the child joins can never stand for it."""
        shared = SharedNamespaces()
        fds = shared.joined
        try:
            for kind in ("pid", "net", "ipc", "uts"):
                value = getattr(spec.namespaces, kind)
                if not value.startswith("container:"):
                    continue
                other_id = value.removeprefix("container:")
                other = self.containers.get(other_id)
                if other is None or other.exit is not None or other.start_w is not None:
                    raise ConflictError(
                        f"container {spec.id!r} shares the {kind} namespace of container "
                        f"{other_id!r}, which is not running",
                        hint=f"start {other_id!r} first")
                fd = os.open(f"/proc/{other.pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)
                fds[kind] = fd
                if kind == "ipc":  # its /dev/shm is mounted from its mount namespace
                    shared.shm_from = os.open(f"/proc/{other.pid}/ns/mnt",
                                              os.O_RDONLY | os.O_CLOEXEC)
                # Still alive after the open: the namespace is that container's own.
                if select.select([other.pidfd], [], [], 0)[0]:
                    raise ConflictError(
                        f"container {other_id!r} exited as container {spec.id!r} was "
                        f"joining its {kind} namespace", hint=f"start {other_id!r} again")
        except BaseException:
            shared.close()
            raise
        return shared

    def _fork(self, spec: ContainerSpec, paths: ContainerPaths, plan: Any,
              cgroup: CgroupManager, made: list[int], shared: SharedNamespaces
              ) -> Container:
        ready_r, ready_w = os.pipe()
        start_r, start_w = os.pipe()
        made += [ready_r, ready_w, start_r, start_w]
        console: tuple[int, int] | None = None
        stdin_w = -1
        if spec.process.terminal:
            # The child opens the pty from the container's devpts and sends the master
            # here before it says "R" (`_take_console`).
            mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            console = (mine.detach(), theirs.detach())
            made += list(console)
            ends = {"stdin": self.devnull, "stdout": self.devnull, "stderr": self.devnull}
            outputs: dict[int, str] = {}
        else:
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            made += [out_r, out_w, err_r, err_w]
            ends = {"stdin": self.devnull, "stdout": out_w, "stderr": err_w}
            outputs = {out_r: "stdout", err_r: "stderr"}
            if spec.process.stdin_open:
                stdin_r, stdin_w = os.pipe()
                made += [stdin_r, stdin_w]
                ends["stdin"] = stdin_r
        pipes = child.ChildPipes(ready_w=ready_w, start_r=start_r, tty=spec.process.terminal,
                                 console=console[1] if console else None,
                                 namespaces={k: fd for k, fd in shared.joined.items()
                                             if k != "pid"},
                                 shm_from=shared.shm_from,
                                 **ends)
        log = LogWriter(paths.log, spec.log.max_size, spec.log.max_files)
        pid = self._fork_in_pid_namespace(spec, paths, plan, pipes, cgroup,
                                          shared.joined.get("pid"))
        theirs_end = {console[1]} if console else set()
        for fd in {ready_w, start_r, *ends.values(), *theirs_end} - {self.devnull}:
            _close(fd)
            made.remove(fd)
        c = Container(spec=spec, paths=paths, cgroup=cgroup, pid=pid,
                      pidfd=os.pidfd_open(pid), start_w=start_w, ready_r=ready_r, log=log,
                      console=console[0] if console else None,
                      stdin_w=stdin_w if spec.process.stdin_open and not console else None,
                      backlog=[] if spec.process.stdin_open else None)
        made.clear()  # from here on the Container owns the descriptors
        for fd, stream in outputs.items():
            os.set_blocking(fd, False)
            c.streams[fd] = stream
            self.sel.register(fd, selectors.EVENT_READ, ("output", c))
        if not spec.process.terminal:
            self._tell_keeper("hold", spec.id, list(outputs))
        return c

    def _tell_keeper(self, word: str, cid: str, fds: list[int] | None = None) -> None:
        """Have the keeper hold (or drop) copies of a container's output pipes: should
        we be killed, its writes then fill the pipe and wait for the next monitor
        instead of meeting a pipe without reader (SIGPIPE). Best effort: without a
        keeper, that is what happens."""
        if self.keeper is None:
            return
        try:
            socket.send_fds(self.keeper, [f"{word} {cid}".encode()], fds or [])
        except OSError:
            pass

    def _fork_in_pid_namespace(self, spec: ContainerSpec, paths: ContainerPaths, plan: Any,
                               pipes: child.ChildPipes, cgroup: CgroupManager,
                               shared: int | None) -> int:
        """Fork the container's PID 1 straight from here: unshare(CLONE_NEWPID) only
        affects children, and setns back to our own PID namespace undoes it at once.
        `shared`: another container's PID namespace (its processes see ours, and ours
        is not PID 1 there)."""
        pidns = spec.namespaces.pid
        if pidns == "new":
            sc.unshare(sc.CLONE_NEWPID)
        elif shared is not None:
            sc.setns(shared, sc.CLONE_NEWPID)
        elif pidns != "host":
            fd = os.open(pidns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                sc.setns(fd, sc.CLONE_NEWPID)
            finally:
                os.close(fd)
        try:
            pid = os.fork()
            if pid == 0:
                child.run(spec, paths, plan, pipes, cgroup, nofile=self.container_nofile,
                          setup_timeout=SETUP_TIMEOUT)
        finally:
            if pidns != "host":
                sc.setns(self.own_pidns, sc.CLONE_NEWPID)
        return pid

    def start(self, c: Container, client: Client) -> None:
        if c.ready_r is not None and c.ready_r in self.pending:
            raise ConflictError(f"container {c.spec.id!r} is still being created or started",
                                hint="wait for that request's answer")
        if c.start_w is None or c.ready_r is None:
            raise ConflictError(f"container {c.spec.id!r} was already started",
                                hint="create a new container to run it again")
        if c.exit is not None:
            raise ConflictError(f"container {c.spec.id!r} has exited",
                                hint="delete it and create it again")
        state = read_json(c.paths.state) or {}
        state["started_at"] = now_iso()
        write_json(c.paths.state, state)
        try:
            os.write(c.start_w, b"S")
        except BrokenPipeError:
            pass
        _close(c.start_w)
        c.start_w = None
        # EOF means the exec happened (the pipe is close-on-exec); anything else is why not.
        self._await_child(c, client, want=b"")

    # ---- answers from a child's ready pipe ---------------------------------------

    def _await_child(self, c: Container, client: Client, *, want: bytes) -> None:
        """Answer `client` once the child says `want` (or why not) on its ready pipe."""
        assert c.ready_r is not None
        os.set_blocking(c.ready_r, False)
        pending = Pending(c, client, want, time.monotonic() + SETUP_TIMEOUT)
        # Answered later: neither a stalled client nor one whose socket we read.
        if self.clients.get(client.sock.fileno()) is client:
            del self.clients[client.sock.fileno()]
        if self.sel.get_map().get(client.sock.fileno()) is not None:
            self.sel.unregister(client.sock)
        self.pending[c.ready_r] = pending
        self.sel.register(c.ready_r, selectors.EVENT_READ, ("ready", pending))

    def on_ready(self, pending: Pending) -> None:
        fd = pending.c.ready_r
        assert fd is not None
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        pending.data += chunk
        if pending.data.startswith(child.STILL_SETTING_UP):
            # Working on, not stuck: its time starts again.
            pending.data = pending.data.lstrip(child.STILL_SETTING_UP)
            pending.deadline = time.monotonic() + SETUP_TIMEOUT
            if chunk and not pending.data:
                return
        if chunk and pending.data != pending.want:
            return  # more of a report is coming, then EOF
        self._settle(pending, _parse_report(pending.data, pending.want))

    def expire_pending(self) -> None:
        now = time.monotonic()
        for pending in [p for p in self.pending.values() if now >= p.deadline]:
            self._settle(pending, HostError(
                "the container's first process did not answer in time",
                hint="the host may be overloaded or a mount is hanging"))

    def _settle(self, pending: Pending, problem: StackdError | None) -> None:
        c = pending.c
        fd = c.ready_r
        assert fd is not None
        self.pending.pop(fd, None)
        if self.sel.get_map().get(fd) is not None:
            self.sel.unregister(fd)
        if pending.want == b"R":  # a create
            self._take_console(c)
            if problem is None:
                try:
                    write_json(c.paths.state, {
                        "pid": c.pid, "pid_start": process_start_time(c.pid),
                        "created_at": c.created_at or now_iso(), "started_at": None,
                        # What a monitor that takes over finds again (adopt).
                        "outputs": {stream: os.fstat(fd).st_ino
                                    for fd, stream in c.streams.items()}})
                    # A respawn's last exit, read as "exited" until the line above.
                    c.paths.exit.unlink(missing_ok=True)
                except OSError as e:  # a full run dir: the create fails, nothing is left
                    problem = self.complain_about(e) or HostError(
                        f"cannot record container {c.spec.id!r}: {e}")
            if problem is None:
                self.reply(pending.client, {"ok": True, "pid": c.pid})
                return
            self._forget(c, reap=True)
            _remove_container_files(c.paths)
            try:
                c.cgroup.kill_all()
                c.cgroup.destroy()
            except StackdError:
                pass
        else:  # a start
            _close(fd)
            c.ready_r = None
            if problem is None:
                self.reply(pending.client, {"ok": True})
                return
        self.reply(pending.client, protocol.error_reply(problem))

    def _take_console(self, c: Container) -> None:
        """A TTY container's pty master, sent by its child before "R": from now on its
        output, as a pipe's is otherwise."""
        if c.console is None:
            return
        sock = socket.socket(fileno=c.console)
        c.console = None
        try:
            sock.setblocking(False)
            _, fds, _, _ = socket.recv_fds(sock, 16, 1)
        except OSError:
            fds = []  # the child failed before: its report says why
        finally:
            sock.close()
        for master in fds:
            os.set_blocking(master, False)
            c.master = master
            c.streams[master] = "stdout"
            self.sel.register(master, selectors.EVENT_READ, ("output", c))

    def _cancel_pending(self, c: Container) -> None:
        """The container goes (a delete) while a create or start of it waits."""
        pending = self.pending.get(c.ready_r) if c.ready_r is not None else None
        if pending is None:
            return
        self.pending.pop(c.ready_r, None)  # type: ignore[arg-type]
        if self.sel.get_map().get(c.ready_r) is not None:  # type: ignore[arg-type]
            self.sel.unregister(c.ready_r)  # type: ignore[arg-type]
        self.reply(pending.client, protocol.error_reply(ConflictError(
            f"container {c.spec.id!r} was deleted while it was being set up")))

    def attach(self, c: Container, client: Client) -> None:
        """`stackd run -i/-t`: the client gets the container's input end (the pty master,
        or the stdin pipe's write end, which only the first attach gets: its close is
        the process's EOF) by SCM_RIGHTS with the reply, then every output chunk —
        what was kept since the start first — as {"stream", "data": base64} lines, and
        at the exit the exit line a `wait` gets."""
        if c.backlog is None:
            raise ConflictError(f"container {c.spec.id!r} was not created to be attached",
                                hint="run it with -i or -t")
        fds = [c.master] if c.master is not None else [c.stdin_w] if c.stdin_w else []
        self.clients.pop(client.sock.fileno(), None)
        self.sel.modify(client.sock, selectors.EVENT_READ, ("waiter", client))
        client.sock.settimeout(5)  # a client that stopped reading must not wedge us
        try:
            socket.send_fds(client.sock, [protocol.encode(
                {"ok": True, "tty": c.master is not None, "input": bool(fds)})], fds)
        except OSError:
            self.drop(client)
            return
        if c.stdin_w is not None:
            _close(c.stdin_w)  # the client holds the only write end now
            c.stdin_w = None
        backlog, c.backlog = c.backlog, []
        for stream, data in backlog:
            self._send_output(client, stream, data)
        if c.exit is not None:
            self.reply(client, {"ok": True, "exit": c.exit.to_json()})
            return
        client.waiting_on = c
        c.waiters.append(client)
        c.attached.append(client)

    def _send_output(self, client: Client, stream: str, data: bytes) -> None:
        try:
            client.sock.sendall(protocol.encode(
                {"stream": stream, "data": base64.b64encode(data).decode()}))
        except OSError:
            self.drop(client)

    def kill(self, c: Container, signame: str) -> dict[str, Any]:
        sig = signal_number(signame)
        if c.exit is None:
            try:
                signal.pidfd_send_signal(c.pidfd, sig)
            except ProcessLookupError:
                pass
            if sig == signal.SIGKILL and c.cgroup.frozen():
                # A paused container is killed as docker kills one: thawed, so the
                # SIGKILL takes (v1's freezer holds it back), and stop/down finish.
                c.cgroup.kill_all()
        return {"ok": True}

    def respawn(self, spec: ContainerSpec, client: Client, *, keep_layer: bool = False
                ) -> None:
        """An exited container created again from `spec` (a restart): same id, its log
        going on, as delete(keep_logs) then create — except that it is never missing
        meanwhile. Its exited records stay where `inspect` and `list` read them until
        the new process has set up and its own replace them; a delete-then-create
        left a window in which `inspect NAME` said "no container" (CI saw it).
        keep_layer: its writable layer (upper dir) goes on too, as Docker's restart
        keeps it; the overlay gets a fresh work dir."""
        paths = ContainerPaths(self.roots, spec.id)
        c = self.containers.get(spec.id)
        if c is not None and c.exit is None:
            raise ConflictError(f"container {spec.id!r} is running or being created",
                                hint="stop it first")
        if not paths.state.exists():
            raise NotFoundError(f"no container {spec.id!r}")
        created_at = _created_at(paths)
        self._let_go(spec.id, c)
        records = {paths.state.name, paths.exit.name, paths.spec.name}
        for entry in os.scandir(paths.run_dir):
            if entry.name not in records:
                _remove_entry(entry)
        self._discard(paths, keep_logs=True, run_dir=False, keep_layer=keep_layer)
        self.create(spec, client, respawn=True)
        made = self.containers.get(spec.id)
        if made is not None:
            made.created_at = created_at

    def delete(self, cid: str, force: bool, keep_logs: bool = False) -> dict[str, Any]:
        paths = ContainerPaths(self.roots, cid)
        c = self.containers.get(cid)
        if c is None and not paths.run_dir.exists() and not paths.state_dir.exists():
            raise NotFoundError(f"no container {cid!r}")
        if c is not None and c.exit is None:
            started = c.start_w is None
            if started and not force:
                raise ConflictError(f"container {cid!r} is running",
                                    hint="stop it first, or delete with force")
            try:
                signal.pidfd_send_signal(c.pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass
            c.cgroup.kill_all()
            self._exited(c, self._wait_killed(c))
        self._let_go(cid, c)
        self._discard(paths, keep_logs=keep_logs)
        return {"ok": True}

    def _let_go(self, cid: str, c: Container | None) -> None:
        """An exited container's descriptors and cgroup gone (delete, respawn); with no
        Container of ours (an earlier monitor's), whatever its cgroup still holds is
        killed first."""
        if c is not None:
            self._forget(c, reap=False)
        cgroup = manager_for(self.roots.id, cid)
        if c is None:
            cgroup.kill_all()
        cgroup.destroy()

    # ---- containers a killed monitor left behind ------------------------------

    def adopt(self) -> None:
        """Take over the containers a killed monitor left running (before we listen).

        Their PID 1 is not our child (it was reparented to the old monitor's keeper,
        or to init if that is gone too), so: a pidfd tells us of its exit, whose status
        the keeper records (lost, recorded as unknown, without a keeper); its
        stdout/stderr pipes are opened again through /proc/<pid>/fd when they are still
        the pipes we made, so output is read and logged again. What it wrote while no
        monitor read the pipes is lost: a write then fails with EPIPE, and the default
        SIGPIPE ends the process (a restart policy restarts it)."""
        base = containers_dir(self.roots)
        for entry in sorted(os.listdir(base)) if base.is_dir() else []:
            if entry.startswith("."):
                continue  # being removed
            try:
                self._adopt(ContainerPaths(self.roots, entry))
            except Exception as e:  # one bad record must not keep the others unmanaged
                self.complain_about(e)

    def repair(self, paths: ContainerPaths) -> list[str]:
        """Quarantine a container's unreadable records: move each aside (kept beside it
        as `<name>.corrupt-<time>`, removed with the container) and write what stands in
        for it (statefile.check_records): the spec's copy, the process its cgroup holds.
        A spec without a readable copy stays as it is: there is nothing better to write.
        → what was done, one line each."""
        check = check_records(paths, load_spec)
        if check is None or check.problem is None:
            return []
        done = []
        if check.state_problem:
            aside = _quarantine(paths.state)
            record = dict(check.record, outputs={})
            write_json(paths.state, record)
            done.append(f"state.json {check.state_problem}: moved aside to {aside.name}; "
                        f"rewritten from its cgroup (pid {record['pid']})")
        if check.spec_problem and check.spec_restorable:
            aside = _quarantine(paths.spec)
            write_private(paths.spec, paths.spec_copy.read_bytes())  # the environment: 0600
            done.append(f"spec.json {check.spec_problem}: moved aside to {aside.name}; "
                        "restored from its copy in the state dir")
        elif check.spec_problem:
            done.append(f"spec.json {check.spec_problem} and has no readable copy: left "
                        "in place; the container can be stopped and removed, not re-created")
        for line in done:
            sys.stderr.write(f"monitor: container {paths.id}: {line}\n")
        return done

    def _adopt(self, paths: ContainerPaths) -> None:
        if paths.exit.exists():
            return  # its exit is recorded: nothing to watch
        self.repair(paths)
        check = check_records(paths, load_spec)
        if check is None:
            self._undo_unfinished_create(paths)
            return
        spec, record = check.spec, check.record
        pid, start = record.get("pid"), record.get("pid_start")
        cgroup = manager_for(self.roots.id, spec.id)
        pidfd = None
        if isinstance(pid, int) and is_alive(pid, start):
            try:
                pidfd = os.pidfd_open(pid)
            except ProcessLookupError:
                pass
        # Checked again with the pidfd open: from here on the pid cannot be reused.
        if pidfd is None or not isinstance(pid, int) or process_start_time(pid) != start:
            if pidfd is not None:
                _close(pidfd)
            if _kept_exit(paths) is None:
                write_json(paths.exit, ExitStatus.lost(oom_killed=cgroup.oom_kills() > 0)
                           .to_json() | {"finished_at": now_iso()})
                sys.stderr.write(f"monitor: container {spec.id} ended while neither a "
                                 "monitor nor its keeper watched it; its exit status is lost\n")
            return
        c = Container(spec=spec, paths=paths, cgroup=cgroup, pid=pid, pidfd=pidfd,
                      start_w=None, ready_r=None, adopted=True,
                      log=LogWriter(paths.log, spec.log.max_size, spec.log.max_files))
        for stream, ino in (record.get("outputs") or {}).items():
            fd = _reopen_pipe(pid, 1 if stream == "stdout" else 2, ino)
            if fd is not None:
                c.streams[fd] = stream
                self.sel.register(fd, selectors.EVENT_READ, ("output", c))
        self.containers[spec.id] = c
        self.sel.register(pidfd, selectors.EVENT_READ, ("adopted", c))
        sys.stderr.write(f"monitor: adopted container {spec.id} (pid {pid}, "
                         f"{len(c.streams)} output pipe(s) found again)\n")

    def _undo_unfinished_create(self, paths: ContainerPaths) -> None:
        """A container without a state record, found before we listen, is a create its
        monitor died in (no other monitor of this root can be making one now): no
        client was told of it, nothing lists it, and it holds its id against the
        create that would make it again — so it goes, with its process and cgroups."""
        self._let_go(paths.id, None)
        self._discard(paths)
        sys.stderr.write(f"monitor: removed container {paths.id}: its create was cut "
                         "short when the monitor making it was killed\n")

    def on_adopted_exit(self, c: Container) -> None:
        """Its status went to the old monitor's keeper (its new parent), which records
        it in a moment; lost (unknown) only if that keeper is gone too."""
        self.sel.unregister(c.pidfd)
        known = _kept_exit(c.paths)
        if known is not None and c.cgroup.oom_kills() > 0:
            known = ExitStatus(known.code, known.signal, oom_killed=True)
        self._exited(c, None, known=known)

    # ---- output and exits --------------------------------------------------------

    def pump(self, c: Container, fd: int, budget: int = PUMP_BUDGET) -> None:
        stream = c.streams.get(fd)
        if stream is None:
            return  # already closed (a stale ready event)
        while budget > 0:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError:  # EIO: the pty's last holder closed it
                data = b""
            if not data:
                if self.sel.get_map().get(fd) is not None:
                    self.sel.unregister(fd)
                c.streams.pop(fd, None)
                _close(fd)
                c.log.flush(stream)
                return
            c.log.feed(stream, data)
            if c.log.lost:
                self.complain("disk-full-log", "container output is being dropped: no space "
                              f"left for the logs under {self.roots.state}")
            budget -= len(data)
            if c.attached:
                for client in list(c.attached):
                    self._send_output(client, stream, data)
            elif c.backlog is not None and sum(len(d) for _, d in c.backlog) < ATTACH_BACKLOG:
                c.backlog.append((stream, data))

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            c = self.by_pid.get(pid)
            if c is not None:
                self._exited(c, status)
            # else: an orphan reparented to us (we are a subreaper); reaped, nothing to record

    def _wait_killed(self, c: Container) -> int:
        """The wait status of a container just sent SIGKILL, once it is dead."""
        if c.adopted:  # not our child: wait for its pidfd to say it is gone
            sel = selectors.DefaultSelector()
            sel.register(c.pidfd, selectors.EVENT_READ)
            sel.select(KILLED_WAIT_SECONDS)
            sel.close()
            if self.sel.get_map().get(c.pidfd) is not None:
                self.sel.unregister(c.pidfd)
            return signal.SIGKILL
        try:
            _, status = os.waitpid(c.pid, 0)
        except ChildProcessError:  # reaped already, its exit not recorded
            status = signal.SIGKILL
        return status

    def _exited(self, c: Container, status: int | None,
                known: ExitStatus | None = None) -> None:
        """status: as waitpid gave it; None if we could not wait for it (adopted): then
        `known`, as the keeper recorded it, or lost."""
        self.by_pid.pop(c.pid, None)
        for fd in list(c.streams):
            try:
                # Whatever is left in the pipes belongs before the exit.
                self.pump(c, fd, budget=DRAIN_BUDGET)
            except Exception:  # a lost tail of output must not lose the exit status
                traceback.print_exc()
        oom = c.cgroup.oom_kills() > 0
        if c.spec.namespaces.pid != "new":
            # No PID namespace of its own whose end takes every process with it: what
            # the first process left running (adopted by the host's init, or the other
            # container's) ends with it, as runc ends it — else stop leaves it running
            # and delete cannot remove the cgroup.
            try:
                c.cgroup.kill_all()
            except StackdError as e:
                self.complain_about(e)
        c.exit = known or (ExitStatus.lost(oom_killed=oom) if status is None
                           else ExitStatus.from_wait_status(status, oom_killed=oom))
        record = c.exit.to_json() | {"finished_at": now_iso()}
        if c.paths.run_dir.exists():
            try:
                write_json(c.paths.exit, record)
            except OSError as e:  # a full run dir: the waiters still learn of the exit
                self.complain_about(e)
        for client in list(c.waiters):
            try:
                client.sock.settimeout(5)  # a client that stopped reading must not wedge us
                client.sock.sendall(protocol.encode({"ok": True, "exit": record}))
            except OSError:
                pass
            self.drop(client)
        c.waiters.clear()

    def _forget(self, c: Container, *, reap: bool) -> None:
        self._cancel_pending(c)
        if reap and c.exit is None:
            try:
                signal.pidfd_send_signal(c.pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._exited(c, self._wait_killed(c))
        if c.adopted and self.sel.get_map().get(c.pidfd) is not None:
            self.sel.unregister(c.pidfd)
        for stream_fd in list(c.streams):
            if self.sel.get_map().get(stream_fd) is not None:
                self.sel.unregister(stream_fd)
            _close(stream_fd)
        c.streams.clear()
        c.log.close()
        for fd in (c.pidfd, c.start_w, c.ready_r, c.console, c.stdin_w):
            if fd is not None:
                _close(fd)
        self.containers.pop(c.spec.id, None)
        self.by_pid.pop(c.pid, None)
        self._tell_keeper("drop", c.spec.id)


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _kept_exit(paths: ContainerPaths) -> ExitStatus | None:
    """The exit the old monitor's keeper recorded (or records within a moment: it reaps
    at once); None if there is none."""
    deadline = time.monotonic() + KEEPER_WAIT_SECONDS
    while (recorded := read_json(paths.exit)) is None and time.monotonic() < deadline:
        time.sleep(0.005)
    try:
        return ExitStatus.from_json(recorded) if recorded else None
    except (KeyError, TypeError, ValueError):
        return None


def _quarantine(path: Path) -> Path:
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
    os.replace(path, aside)
    return aside


def _reopen_pipe(pid: int, fd: int, ino: object) -> int | None:
    """A new read end of the pipe that is descriptor `fd` of process `pid`, if that is
    still the pipe with inode `ino` (the one its monitor made); else None."""
    link = f"/proc/{pid}/fd/{fd}"
    try:
        st = os.stat(link)
        if not stat.S_ISFIFO(st.st_mode) or st.st_ino != ino:
            return None
        # Opening a pipe's /proc link opens the pipe itself, here its reading side.
        return os.open(link, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None


class _NoReport(HostError):
    """The child ended without saying why."""


def _parse_report(data: bytes, want: bytes) -> StackdError | None:
    """None if the child said `want`; else the error its JSON report names."""
    if data == want:
        return None
    try:
        report = json.loads(data)
    except ValueError:
        return _NoReport("the container's first process died while setting up",
                         hint="see the monitor log under the run dir")
    if report.get("trace"):
        sys.stderr.write(report["trace"])
    try:
        protocol.raise_error({"ok": False, **report})
    except StackdError as e:
        return e
    return None


def _created_at(paths: ContainerPaths) -> str | None:
    """When the container was first made, from its state record; None if unreadable
    (its respawn is then made now, as a new one)."""
    value = (read_json(paths.state) or {}).get("created_at")
    return value if isinstance(value, str) else None


def _remove_entry(entry: os.DirEntry[str]) -> None:
    if entry.is_dir(follow_symlinks=False):
        remove_tree(entry.path, ignore_errors=True)
    else:
        try:
            os.unlink(entry.path)
        except FileNotFoundError:
            pass


def _remove_container_files(paths: ContainerPaths) -> None:
    for d in (paths.run_dir, paths.state_dir):
        remove_tree(d, ignore_errors=True)


def _security_module() -> Any:
    try:
        from stackd.runtime import security
    except ImportError:
        return None
    # TODO(security): until the hardening module lands, containers run without a
    # capability/seccomp plan (plain setgroups/setgid/setuid in child.py).
    return security if hasattr(security, "prepare") else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv,
                      ("--state", "--run", "--root-id"), prog="stackd-monitor")
    # Explicit, not inherited from whoever started us (a CLI under umask 077 or 000):
    # containers inherit it, and what is private is made so by mode, not by umask.
    os.umask(0o022)
    roots = Roots(state=Path(args["--state"]), run=Path(args["--run"])).ensure()
    private_dir(containers_dir(roots))
    mpaths = MonitorPaths(roots.run)
    ready = detached.detach(mpaths.lock, lambda: _answers(mpaths.socket), name="monitor")
    inherited_nofile = _raise_nofile_limit()
    # This process stays behind as our parent, the keeper (keeper.py): a subreaper, so
    # that if we are killed our containers' exit statuses reach it and are recorded.
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    to_keeper, keeper_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    monitor_pid = os.fork()
    if monitor_pid != 0:
        # The lock and the ready pipe (both close-on-exec) stay the monitor's: a new
        # monitor must get the lock when this one dies.
        to_keeper.close()
        os.set_inheritable(keeper_end.fileno(), True)
        try:
            os.execv(sys.executable, [
                sys.executable, "-m", "stackd.runtime.keeper", "--run", str(roots.run),
                "--root-id", roots.id, "--monitor-pid", str(monitor_pid),
                "--socket-fd", str(keeper_end.fileno())])
        finally:
            os._exit(1)  # no keeper: the monitor runs on without one
    keeper_end.close()
    to_keeper.setblocking(False)  # a stuck keeper must never stall us
    # Ours alone now (the lock): close what an older stackd left open.
    containerdirs.prepare(roots)
    containerdirs.tighten_all(roots)
    specview.schema()  # the specs of the stackd that started us, whatever is installed later
    monitor = Monitor(roots)
    monitor.keeper = to_keeper
    monitor.container_nofile = inherited_nofile
    monitor.adopt()  # before anyone can ask about them
    listener = monitor.bind()
    write_private(mpaths.pidfile, f"{os.getpid()}\n".encode())
    sc.set_process_name("stackd-monitor")
    ready()
    monitor.serve(listener)
    os._exit(0)


def _raise_nofile_limit() -> tuple[int, int]:
    """Raise our soft RLIMIT_NOFILE to the hard limit; return what it was. We hold ~6
    descriptors per container, so a soft limit of 1024 (a common default) would run
    out near 150 containers; containers get the old limit back (child.run)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    return soft, hard


def _answers(path: Path) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(2)
        s.connect(str(path))
        s.sendall(protocol.encode({"op": "ping"}))
        return b'"ok": true' in s.recv(4096)
    except OSError:
        return False
    finally:
        s.close()


if __name__ == "__main__":
    sys.exit(main())
