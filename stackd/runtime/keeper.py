"""The keeper: the runtime monitor's parent, for as long as anything the monitor forked
lives (`python -m stackd.runtime.keeper`, exec'd by the monitor's start-up).

It is a child subreaper. While the monitor runs it does nothing (the containers are
the monitor's children). If the monitor is killed, its containers are reparented
here, not to init; when one exits, this process reaps it and records its real exit
status in the container's exit.json — which no later monitor could learn, the
container not being its child. It exits once the monitor and every such orphan are
gone (waitpid says ECHILD).

Standard library only, on purpose: it lives as long as the monitor, and importing the
runtime (pydantic) would triple its memory. So the two small rules it needs — an
atomic JSON write and the exit code of a wait status — are written out here; they
match statefile.write_json and model.ExitStatus.from_wait_status.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path

from stackd.runtime import syscalls as sc


def keep(run: Path, monitor_pid: int) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return
        except InterruptedError:
            continue
        if pid == monitor_pid:
            continue
        try:
            record_orphan_exit(run, pid, status)
        except Exception:  # never lose the next one for this one
            traceback.print_exc()


def record_orphan_exit(run: Path, pid: int, status: int) -> None:
    """Record the exit of `pid` if it was a container's first process. Its zombie held
    the pid until now, so the recorded pid cannot name another process."""
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
            return
        if os.WIFSIGNALED(status):
            code, sig = 128 + os.WTERMSIG(status), os.WTERMSIG(status)
        else:
            code, sig = os.WEXITSTATUS(status), None
        _write_json(d / "exit.json", {
            "code": code, "signal": sig, "oom_killed": False, "unknown": False,
            "finished_at": datetime.now(UTC).isoformat(), "recorded_by": "keeper"})
        sys.stderr.write(f"keeper: container {entry} (pid {pid}) exited with {code} "
                         "while no monitor held it; recorded\n")
        return


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
    args = parser.parse_args(argv)
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)  # kept across exec; said again to be sure
    sc.set_process_name("stackd-keeper")
    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    keep(Path(args.run), args.monitor_pid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
