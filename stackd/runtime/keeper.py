"""The keeper: the runtime monitor's parent, for as long as anything the monitor forked
lives (`python -m stackd.runtime.keeper`, exec'd by the monitor's start-up).

It is a child subreaper. While the monitor runs it only holds, for each container, a
copy of the read ends of its output pipes (sent over a socket, dropped when the
container is deleted) and never reads them. If the monitor is killed:

- the containers' pipes still have a reader, so their writes fill the pipe (64 KiB)
  and then wait — no SIGPIPE, nothing lost — until the next monitor opens the pipes
  again through /proc/<pid>/fd and reads on;
- the containers are reparented here, not to init; when one exits, this process
  reaps it and records its real exit status in the container's exit.json — which no
  later monitor could learn, the container not being its child — and lets go of its
  pipes.

It exits once the monitor and every such orphan are gone (waitpid says ECHILD).

Few modules of the standard library only, on purpose: it is host memory paid per
state root for as long as the monitor lives (issue #20: host memory per container).
Importing the runtime (pydantic) would triple it; ctypes (for prctl), argparse,
datetime and pathlib took it from ~4.5 to ~8 MiB PSS. The subreaper flag is set
before the exec (and kept across it), the process name is written to
/proc/self/comm. So the small rules it needs — an atomic JSON write, the exit code of
a wait status, an ISO time — are written out here; they match statefile.write_json,
model.ExitStatus.from_wait_status and the runtime's finished_at.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import sys
import time


def keep(run: str, monitor_pid: int, monitor: socket.socket) -> None:
    held: dict[str, list[int]] = {}  # container id → read ends of its output pipes
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    sel = selectors.DefaultSelector()
    sel.register(wake_r, selectors.EVENT_READ, "child")
    sel.register(monitor, selectors.EVENT_READ, "monitor")
    while True:
        while True:  # reap first: a child may have gone before we listened
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                break
            if pid != monitor_pid:
                try:
                    cid = record_orphan_exit(run, pid, status)
                except Exception as exc:  # never lose the next one for this one
                    sys.stderr.write(f"keeper: recording the exit of {pid}: {exc!r}\n")
                    cid = None
                _close_all(held.pop(cid, []) if cid else [])
        for key, _ in sel.select():
            if key.data == "child":
                os.read(wake_r, 4096)
            elif not _take(monitor, held):
                sel.unregister(monitor)  # the monitor is gone: hold on to what we have


def _take(monitor: socket.socket, held: dict[str, list[int]]) -> bool:
    """One message of the monitor: "hold <id>" with descriptors, or "drop <id>".
    False once the monitor has hung up."""
    try:
        msg, fds, _, _ = socket.recv_fds(monitor, 1024, 16)
    except InterruptedError:
        return True
    except OSError:
        return False
    if not msg:
        return False
    word, _, cid = msg.decode(errors="replace").partition(" ")
    _close_all(held.pop(cid, []))
    if word == "hold":
        held[cid] = list(fds)
    else:
        _close_all(list(fds))
    return True


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def record_orphan_exit(run: str, pid: int, status: int) -> str | None:
    """Record the exit of `pid` if it was a container's first process; → its id. Its
    zombie held the pid until now, so the recorded pid cannot name another process."""
    base = os.path.join(run, "containers")
    for entry in os.listdir(base) if os.path.isdir(base) else []:
        if entry.startswith("."):
            continue
        d = os.path.join(base, entry)
        try:
            with open(os.path.join(d, "state.json"), "rb") as f:
                record = json.loads(f.read())
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or record.get("pid") != pid:
            continue
        if os.path.exists(os.path.join(d, "exit.json")):
            return entry
        if os.WIFSIGNALED(status):
            code, sig = 128 + os.WTERMSIG(status), os.WTERMSIG(status)
        else:
            code, sig = os.WEXITSTATUS(status), None
        _write_json(os.path.join(d, "exit.json"), {
            "code": code, "signal": sig, "oom_killed": False, "unknown": False,
            "finished_at": _utc_now_iso(), "recorded_by": "keeper"})
        sys.stderr.write(f"keeper: container {entry} (pid {pid}) exited with {code} "
                         "while no monitor held it; recorded\n")
        return entry
    return None


def _utc_now_iso() -> str:
    """datetime.now(UTC).isoformat(), without importing datetime."""
    now = time.time()
    micros = int(now * 1_000_000) % 1_000_000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{micros:06d}+00:00"


def _write_json(path: str, data: dict[str, object]) -> None:
    head, name = os.path.split(path)
    tmp = os.path.join(head, f".{name}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(json.dumps(data))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


KEEPER_ARGS = ("--run", "--root-id", "--monitor-pid", "--socket-fd")


def parse_args(argv: list[str], wanted: tuple[str, ...] = KEEPER_ARGS,
               prog: str = "stackd-keeper") -> dict[str, str]:
    """`--name value` pairs, each of `wanted` once and nothing else; for us (--run DIR
    --root-id ID --monitor-pid N --socket-fd N) and the monitor, whose start-up is the
    only caller of either (--root-id is there for ps and tools/leaks). Not argparse:
    its import is ~1.4 MiB of each process's memory (issue #20)."""
    args = dict(zip(argv[::2], argv[1::2], strict=False))
    if len(argv) % 2 or sorted(args) != sorted(wanted):
        raise SystemExit(f"usage: {prog} {' '.join(w + ' X' for w in wanted)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # PR_SET_CHILD_SUBREAPER was set before the exec, which keeps it.
    try:
        with open("/proc/self/comm", "w") as f:
            f.write("stackd-keeper")
    except OSError:
        pass  # only a name for ps
    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    monitor = socket.socket(fileno=int(args["--socket-fd"]))
    os.set_inheritable(monitor.fileno(), False)
    keep(args["--run"], int(args["--monitor-pid"]), monitor)
    return 0


if __name__ == "__main__":
    sys.exit(main())
