"""The daemon holding many busybox containers: its RSS and idle CPU, the time from
`kill -9` of a container to its replacement running, and `stackd ps` wall time beside
`podman ps -a` in the same run. Goals (issue #20): RSS <= 150 MB at 1,000 containers;
heal <= 0.15 s (bench_heal measures it in a small stack). Needs root. bench/run calls
`measure` with 1,000.

    .venv/bin/python bench/bench_daemon.py [--containers 1000] [--kills 5]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import trio
from results import NO_PEER, Peer, Report, Row, table
from stackd_bench_env import IMAGE, BenchRoot, have

from stackd.errors import StackdError
from stackd.runtime.runtime import Runtime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def running(root: BenchRoot) -> dict[str, int]:
    """name → pid of running containers, read as the runtime does (no daemon involved)."""
    states = trio.run(Runtime(root.roots).list)
    return {s.name: s.pid for s in states if s.status == "running" and s.pid}


async def heal_time(root: BenchRoot, name: str, pid: int) -> float:
    """Seconds from SIGKILL of `name`'s process to its replacement running. Only that
    container is looked at (every 5 ms): listing all 500 in the loop cost a core of
    this 2-core host, which slowed the daemon it measures."""
    rt = Runtime(root.roots)
    cid = next(s.id for s in await rt.list() if s.name == name)
    t0 = time.perf_counter()
    os.kill(pid, signal.SIGKILL)
    while time.perf_counter() - t0 < 30:
        try:
            state = await rt.inspect(cid)
        except StackdError:  # gone between the delete and the create of the restart
            state = None
        if state is not None and state.status == "running" and state.pid not in (None, pid):
            return time.perf_counter() - t0
        await trio.sleep(0.005)
    raise RuntimeError(f"{name} not replaced within 30 s")


def measure(root: BenchRoot, containers: int, kills: int, *, idle_seconds: float = 10.0,
            with_podman: bool = True, settle: float = 3.0) -> list[Row]:
    services = max(1, containers // 10)
    replicas = max(1, containers // services)
    total = services * replicas
    d = root.write_stack("many", services, replicas=replicas)
    root.stackd("up", "-d", cwd=d)
    pid = root.daemon_pid()
    assert pid is not None
    assert len(running(root)) == total
    time.sleep(min(2.0, idle_seconds))
    c0, w0 = cpu_seconds(pid), time.monotonic()
    time.sleep(idle_seconds)
    idle_cpu = (cpu_seconds(pid) - c0) / (time.monotonic() - w0) * 100
    rss = rss_mb(pid)

    heals = []
    for i in range(kills):
        # A crash meets a daemon at rest, as in production: the stack's pass after the
        # last heal (observe and plan of every container) is over before the next kill.
        time.sleep(settle)
        before = running(root)
        name = sorted(before)[(i * 37) % len(before)]
        heals.append(trio.run(heal_time, root, name, before[name]))

    listed = root.stackd("ps", "--format", "json", cwd=d).stdout  # a JSON object per line
    rows = [json.loads(line) for line in listed.splitlines()]
    assert len(rows) == total
    ps_times = timed_runs([*root.stackd_argv(), "ps"], cwd=d, env=root.env)
    root.stackd("down", cwd=d)
    ps_peer = NO_PEER if not with_podman else Peer.missing("podman")
    if with_podman and have("podman"):
        _, full = podman_ps_with(root, total)
        ps_peer = Peer("podman ps -a", "ok", full)
    heal = statistics.median(heals)
    return [
        Row("daemon", f"daemon RSS at {total} containers", rss, unit="MB",
            goal="<= 150 MB at 1000", met=rss <= 150 if total >= 1000 else None),
        Row("daemon", f"daemon idle CPU at {total} (% of a core)", idle_cpu, unit="%"),
        Row("daemon", f"heal at {total}: kill -9 to replacement running", heal,
            goal="<= 0.15 s",
            met=heal <= 0.15, samples=len(heals), note=f"max {max(heals):.3f} s"),
        Row("daemon", f"ps with {total} containers", statistics.median(ps_times),
            peer=ps_peer, samples=len(ps_times)),
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--containers", type=int, default=1000)
    ap.add_argument("--kills", type=int, default=5)
    args = ap.parse_args()
    root = BenchRoot()
    try:
        rows = measure(root, args.containers, args.kills)
    finally:
        root.close()
    print(table(Report(rows)))


def timed_runs(cmd: list[str], runs: int = 7, **kw: object) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True, **kw)  # type: ignore[call-overload]
        times.append(time.perf_counter() - t0)
    return times


def podman_ps_with(root: BenchRoot, n: int) -> tuple[float, float]:
    """`podman ps` with none of ours, then `podman ps -a` listing n containers of ours
    (created, not started: listing is what is measured, and starting 500 would take
    minutes); ours are removed again by name, and the image we imported."""
    image = f"localhost/{IMAGE}"
    names = [f"stackd-bench-{i:04d}" for i in range(n)]
    empty = statistics.median(timed_runs(["podman", "ps"]))
    subprocess.run(["podman", "import", str(root.dir / "busybox.tar"), image], check=True,
                   capture_output=True)
    try:
        def create(name: str) -> None:
            subprocess.run(["podman", "create", "--name", name, image, "sleep", "86400"],
                           check=True, capture_output=True)
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(create, names))
        full = statistics.median(timed_runs(["podman", "ps", "-a"]))
    finally:
        for i in range(0, n, 100):
            subprocess.run(["podman", "rm", "-f", *names[i:i + 100]], capture_output=True)
        subprocess.run(["podman", "rmi", image], capture_output=True)
    return empty, full


if __name__ == "__main__":
    main()
