"""trio's rules, measured: no task step of the daemon may hold its loop > 50 ms.

The daemon runs with its opt-in SlowSteps instrument (stackd/daemon/slowsteps.py),
which records every step longer than the threshold. The test drives it under load —
an `up` of 20 busybox services that print, `ps` over and over, `logs -f` and `events`
streaming, a kill loop the controller heals, `logs --tail` and past events read — and
fails listing the task names, durations and stacks of every slow step. The second
test leaves streams mid-way and checks nothing is left running.

CPU time (time.thread_time), not wall time, decides: the machine is shared, and
another process's load stretches a step's wall time without the step doing anything
wrong; blocking work that burns the loop's own CPU (parsing, file reads, SQLite) is
what this rule is about. Wall times are reported alongside.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from e2e_helpers import CLI
from support.psrows import ps_rows

THRESHOLD = 0.050
SERVICES = 20

# Steps slow for reasons outside the daemon's reach, by task name, with the reason.
EXCLUDED: dict[str, str] = {}


def compose(image: str, services: int = SERVICES) -> str:
    out = ["name: loopload", "services:"]
    for i in range(services):
        out += [f"  s{i}:", f"    image: {image}", "    pull_policy: never",
                "    restart: always", "    stop_signal: SIGKILL",
                "    command: [sh, -c, 'while true; do echo line $$RANDOM; sleep 0.05; done']"]
    return "\n".join(out) + "\n"


def slow_steps(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def where(step: dict[str, object]) -> list[str]:
    """The stack a slow step was seen at: stackd's frames, then the innermost two."""
    frames = [str(f) for f in list(step.get("where") or [])]  # type: ignore[call-overload]
    ours = [f for f in frames if "/stackd/" in f]
    return ours[-8:] + [f for f in frames[-2:] if f not in ours]


def test_no_step_blocks_the_daemon_loop_under_load(cli: CLI, demo_image: str,
                                                    tmp_path: Path) -> None:
    record = tmp_path / "slow-steps.jsonl"
    cli.environ["STACKD_SLOW_STEPS"] = str(record)
    # Recorded from half the limit: the near misses are in the file, for a look.
    cli.environ["STACKD_SLOW_STEP_MS"] = str(int(THRESHOLD * 1000 / 2))
    (cli.cwd / "compose.yaml").write_text(compose(demo_image))
    cli("up", "-d", timeout=300)
    # What the daemon's start-up and the first `up` did is measured too: keep it.

    streams = [subprocess.Popen([sys.executable, "-m", "stackd", *args], cwd=cli.cwd,
                                env=cli.env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
               for args in (("logs", "-f"), ("logs", "-f", "s1"), ("events",))]
    try:
        deadline = time.monotonic() + 20
        n = 0
        while time.monotonic() < deadline:
            cli("ps", "-a")
            cli("ps", "--format", "json")
            if n % 3 == 0:  # a crash the controller heals (`stackd kill` is a stop)
                for row in ps_rows(cli("ps", "--format", "json", f"s{n % SERVICES}").stdout):
                    if row.get("pid"):
                        os.kill(int(row["pid"]), signal.SIGKILL)
            if n % 4 == 0:
                # A client that reads a little of a stream and leaves.
                cli("logs", "--tail", "5", f"s{(n + 1) % SERVICES}")
                cli("events", "--no-follow")
            n += 1
        cli("up", "-d", timeout=300)  # a no-op apply, its progress stream
    finally:
        for p in streams:
            p.terminate()
        for p in streams:
            p.wait(timeout=10)

    steps = slow_steps(record)
    slow = [s for s in steps if float(str(s["cpu"])) > THRESHOLD
            and str(s["task"]) not in EXCLUDED]
    report = "\n".join(f"  {s['task']}: cpu {float(str(s['cpu'])) * 1000:.0f} ms, "
                       f"wall {float(str(s['wall'])) * 1000:.0f} ms\n      "
                       + "\n      ".join(where(s))
                       for s in slow)
    assert not slow, f"{len(slow)} steps blocked the daemon's loop > 50 ms:\n{report}"
    assert n > 5, f"only {n} rounds of load in 20 s"


def open_logs(pid: int) -> list[str]:
    """The container log files the daemon process holds open."""
    out = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:
            continue
        if target.endswith(".log") and "/containers/" in target:
            out.append(target)
    return out


def test_clients_that_leave_streams_leave_nothing_running(cli: CLI, demo_image: str) -> None:
    """A client that leaves `logs -f` (or an apply's progress) mid-stream: the daemon
    stops the tasks that fed it there and then — no log file stays open, and nothing
    is left to be torn down later from another task (a nursery exited out of order)."""
    from stackd.cli.client import Client
    from stackd.daemon.paths import log_path

    (cli.cwd / "compose.yaml").write_text(compose(demo_image, 3))
    cli("up", "-d", timeout=300)
    pid = cli.daemon_pid()
    assert pid is not None
    with Client(cli.roots, autostart=False) as c:
        for _ in range(5):
            for path in ("/v1/stacks/loopload/logs", "/v1/containers/loopload-s2-1/logs",
                         "/v1/events"):
                stream = c.stream("GET", path, params={"follow": "true", "since": 0})
                assert next(stream)
                assert next(stream)
                stream.close()
            # A lifecycle verb's stream, left after "accepted": the verb is still done.
            verb = c.stream("POST", "/v1/stacks/loopload/restart",
                            json_body={"services": ["s1"]})
            assert "accepted" in next(verb)
            verb.close()
    deadline = time.monotonic() + 5
    while open_logs(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert open_logs(pid) == [], "log files still open after their readers left"
    # The stack still answers, and the daemon logged no error on the way.
    assert "loopload-s0-1" in cli("ps").stdout
    text = log_path(cli.roots).read_text(errors="replace")
    assert "Traceback" not in text and '"level": "error"' not in text, text[-3000:]
