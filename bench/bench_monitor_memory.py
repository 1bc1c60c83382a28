"""Host memory stackd keeps per running container, beside podman's conmon, in one run.

stackd keeps one monitor process per state root (not one per container) and its
parent, the keeper: everything the runtime spends on N containers is those two
processes' PSS. podman keeps one conmon per container. The containers' own processes
(`sleep`) are counted for neither. (The daemon is the other side: its RSS at 1,000
containers is bench_daemon's row.) bench/run calls `measure`.

    .venv/bin/python bench/bench_monitor_memory.py [--count 100]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from peers import remove_peer_cgroups  # noqa: E402
from results import Peer, Report, Row, table  # noqa: E402
from support.busybox import make_busybox_rootfs  # noqa: E402

from stackd.hostnames import cgroup_relpath  # noqa: E402
from stackd.roots import Roots  # noqa: E402
from stackd.runtime import Runtime  # noqa: E402
from stackd.runtime.containerspec import ContainerSpec, ProcessSpec  # noqa: E402

MiB = 1024.0


def pss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise RuntimeError(f"no Pss for {pid}")


def monitor_pid(roots: Roots) -> int:
    return int((roots.run / "monitor.pid").read_text())


def runtime_pss_kib(roots: Roots) -> int:
    """The monitor's PSS and its keeper's (the monitor's parent)."""
    pid = monitor_pid(roots)
    keeper = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    comm = Path(f"/proc/{keeper}/comm").read_text().strip()
    return pss_kib(pid) + (pss_kib(keeper) if comm == "stackd-keeper" else 0)


async def bench_stackd(roots: Roots, rootfs: Path, count: int) -> tuple[int, int]:
    rt = Runtime(roots)
    first = 0
    try:
        for i in range(count):
            spec = ContainerSpec(id=f"m{i}", name=f"m{i}", layers=(str(rootfs),),
                                 process=ProcessSpec(args=("sleep", "3600")))
            await rt.create(spec)
            await rt.start(spec.id)
            if i == 0:
                await trio.sleep(0.2)
                first = runtime_pss_kib(roots)
        await trio.sleep(0.5)
        states = await rt.list()
        assert sum(s.status == "running" for s in states) == count
        return first, runtime_pss_kib(roots)
    finally:
        for state in await rt.list():
            await rt.delete(state.id, force=True)


def bench_podman(work: Path, rootfs: Path, count: int, cgroup_parent: str) -> tuple[float, str]:
    base = ["podman", "--root", str(work / "storage"), "--runroot", str(work / "runroot"),
            "--tmpdir", str(work / "tmp"), "--cgroup-manager", "cgroupfs",
            "--events-backend", "file", "--runtime", "runc"]
    try:
        for i in range(count):
            proc = subprocess.run(
                [*base, "run", "-d", "--network", "none", "--cgroup-parent", cgroup_parent,
                 # The host's hard limits are below podman's defaults.
                 "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
                 "--name", f"bench-{i}", "--rootfs", str(rootfs), "sleep", "3600"],
                capture_output=True, text=True)
            if proc.returncode != 0:
                return 0.0, f"podman run failed: {proc.stderr.strip().splitlines()[-1]}"
        time.sleep(0.5)
        conmons = conmon_pids(work)
        if len(conmons) != count:
            return 0.0, f"found {len(conmons)} conmon processes for {count} containers"
        return sum(pss_kib(p) for p in conmons) / count, ""
    finally:
        subprocess.run([*base, "rm", "--all", "--force", "--time", "0"], capture_output=True)
        deadline = time.monotonic() + 30
        while conmon_pids(work) and time.monotonic() < deadline:
            time.sleep(0.1)


def conmon_pids(work: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"conmon") and str(work).encode() in b" ".join(argv):
            pids.append(int(entry.name))
    return pids


def unmount_under(path: Path) -> None:
    targets = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        target = line.split()[4]
        if target.startswith(str(path)):
            targets.append(target)
    for target in sorted(targets, key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True)


def measure(count: int, *, with_podman: bool = True) -> list[Row]:
    work = Path(tempfile.mkdtemp(prefix="stackd-bench-mem-"))
    roots = Roots(state=work / "state", run=work / "run").ensure()
    try:
        rootfs = make_busybox_rootfs(work / "rootfs")
        first, total = trio.run(bench_stackd, roots, rootfs, count)
        per = total / count / MiB
        peer = Peer("-", "none")
        if with_podman and shutil.which("podman") is None:
            peer = Peer.missing("podman conmon")
        elif with_podman:
            conmon, why = bench_podman(work / "podman", rootfs, count,
                                       "/" + cgroup_relpath(roots.id, "podman"))
            peer = (Peer.failed("podman conmon", why) if why
                    else Peer("podman conmon", "ok", conmon / MiB))
        marginal = (total - first) / max(count - 1, 1) / MiB
        return [
            Row("memory", f"host memory per container at {count} (monitor+keeper PSS / N)",
                per, unit="MiB", peer=peer, goal="<= 0.1 MiB", met=per <= 0.1),
            Row("memory", "monitor+keeper PSS with 1 container", first / MiB, unit="MiB"),
            Row("memory", "each further container (marginal PSS)", marginal, unit="MiB"),
        ]
    finally:
        unmount_under(work)
        remove_peer_cgroups(roots.id, ("podman",))
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100)
    args = parser.parse_args()
    print(table(Report(measure(args.count))))


if __name__ == "__main__":
    main()
