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

Standard library only, on purpose: it lives as long as the monitor, and importing the
runtime (pydantic) would triple its memory. So the two small rules it needs — an
atomic JSON write and the exit code of a wait status — are written out here; they
match statefile.write_json and model.ExitStatus.from_wait_status.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import socket
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path

from stackd.runtime import syscalls as sc


def keep(run: Path, monitor_pid: int, monitor: socket.socket) -> None:
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
                except Exception:  # never lose the next one for this one
                    traceback.print_exc()
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


def record_orphan_exit(run: Path, pid: int, status: int) -> str | None:
    """Record the exit of `pid` if it was a container's first process; → its id. Its
    zombie held the pid until now, so the recorded pid cannot name another process."""
    base = run / "containers"
    for entry in os.listdir(base) if base.is_dir() else []:
        if entry.startswith("."):
            continue
        d = base / entry
        try:
            record = json.loads((d / "state.json").read_bytes())
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or record.get("pid") != pid:
            continue
        if (d / "exit.json").exists():
            return entry
        if os.WIFSIGNALED(status):
            code, sig = 128 + os.WTERMSIG(status), os.WTERMSIG(status)
        else:
            code, sig = os.WEXITSTATUS(status), None
        _write_json(d / "exit.json", {
            "code": code, "signal": sig, "oom_killed": False, "unknown": False,
            "finished_at": datetime.now(UTC).isoformat(), "recorded_by": "keeper"})
        sys.stderr.write(f"keeper: container {entry} (pid {pid}) exited with {code} "
                         "while no monitor held it; recorded\n")
        return entry
    return None


def _write_json(path: Path, data: dict[str, object]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stackd-keeper")
    parser.add_argument("--run", required=True)
    parser.add_argument("--root-id", required=True)  # shown in ps, for tools/leaks
    parser.add_argument("--monitor-pid", type=int, required=True)
    parser.add_argument("--socket-fd", type=int, required=True)  # from the monitor
    args = parser.parse_args(argv)
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)  # kept across exec; said again to be sure
    sc.set_process_name("stackd-keeper")
    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    monitor = socket.socket(fileno=args.socket_fd)
    os.set_inheritable(monitor.fileno(), False)
    keep(Path(args.run), args.monitor_pid, monitor)
    return 0


if __name__ == "__main__":
    sys.exit(main())
