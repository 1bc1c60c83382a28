"""Start-to-exit latency of `true` in a busybox container: stackd's Runtime API beside
`runc run` and `crun run` on the same root filesystem, in one invocation.

Each sample is a whole container life: create (namespaces, cgroups, rootfs), start,
wait for exit, delete — what `runc run` does in one command. stackd additionally
mounts an overlay (a writable layer over the busybox dir); runc/crun bind the dir
as it is. Samples are interleaved so the host's load hits all alike. Prints medians
and ratios; asserts nothing. bench/run calls `measure`.

    .venv/bin/python bench/bench_runtime_start.py [--runs 30]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from peers import remove_peer_cgroups  # noqa: E402
from results import Peer, Report, Row, table  # noqa: E402
from support.busybox import make_busybox_rootfs  # noqa: E402

from stackd.hostnames import cgroup_relpath  # noqa: E402
from stackd.roots import Roots  # noqa: E402
from stackd.runtime import Runtime  # noqa: E402
from stackd.runtime.containerspec import ContainerSpec, ProcessSpec  # noqa: E402


async def stackd_sample(rt: Runtime, rootfs: Path, i: int) -> tuple[float, float]:
    spec = ContainerSpec(id=f"b{i}", name=f"b{i}", layers=(str(rootfs),),
                         process=ProcessSpec(args=("true",)))
    t0 = time.perf_counter()
    await rt.create(spec)
    await rt.start(spec.id)
    status = await rt.wait(spec.id)
    t1 = time.perf_counter()
    await rt.delete(spec.id)
    t2 = time.perf_counter()
    assert status.code == 0, status
    return t2 - t0, t1 - t0


def make_bundle(bundle: Path, rootfs: Path, cgroups_path: str) -> None:
    bundle.mkdir(parents=True)
    subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["root"] = {"path": str(rootfs), "readonly": True}
    config["process"]["args"] = ["true"]
    config["process"]["terminal"] = False
    # runc's default nofile (1024) is fine; the host forbids raising hard limits.
    config["linux"]["cgroupsPath"] = cgroups_path
    (bundle / "config.json").write_text(json.dumps(config))


def oci_sample(tool: str, state: Path, bundle: Path, i: int) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run([tool, "--root", str(state), "run", "--bundle", str(bundle),
                           f"{tool}-{i}"], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        subprocess.run([tool, "--root", str(state), "delete", "--force", f"{tool}-{i}"],
                       capture_output=True)
        return elapsed, (proc.stderr or proc.stdout).strip().splitlines()[-1]
    return elapsed, ""


async def bench(work: Path, roots: Roots, rootfs: Path, runs: int
                ) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Samples interleaved (stackd, runc, crun, stackd, …) so that load from other
    processes on the host falls on all of them alike."""
    rt = Runtime(roots)
    results: dict[str, list[float]] = {"stackd (create+start+wait+delete)": [],
                                       "stackd (create+start+wait)": []}
    notes: dict[str, str] = {}
    tools = []
    for tool in ("runc", "crun"):
        if shutil.which(tool) is None:
            notes[tool] = "not installed"
            continue
        make_bundle(work / f"bundle-{tool}", rootfs, "/" + cgroup_relpath(roots.id, tool))
        results[f"{tool} run"] = []
        tools.append(tool)
    for i in range(runs + 3):  # the first runs start the monitor and warm caches
        whole, to_exit = await stackd_sample(rt, rootfs, i)
        if i >= 3:
            results["stackd (create+start+wait+delete)"].append(whole)
            results["stackd (create+start+wait)"].append(to_exit)
        for tool in list(tools):
            elapsed, error = oci_sample(tool, work / f"state-{tool}", work / f"bundle-{tool}", i)
            if error:
                notes[tool] = f"refused: {error}"
                tools.remove(tool)
            elif i >= 3:
                results[f"{tool} run"].append(elapsed)
    return results, notes


def measure(runs: int) -> list[Row]:
    """The runtime alone beside runc and crun, each `true` run's exit code checked."""
    work = Path(tempfile.mkdtemp(prefix="stackd-bench-start-"))
    roots = Roots(state=work / "state", run=work / "run")
    try:
        rootfs = make_busybox_rootfs(work / "rootfs")
        roots.ensure()
        results, notes = trio.run(bench, work, roots, rootfs, runs)
    finally:
        _clean(work, roots)
    ours = results["stackd (create+start+wait+delete)"]
    rows = []
    for tool in ("runc", "crun"):
        values = results.get(f"{tool} run")
        if values:
            peer = Peer.ok(f"{tool} run", values)
        elif notes.get(tool) == "not installed":
            peer = Peer.missing(tool)
        else:
            peer = Peer.failed(tool, notes.get(tool, "no run succeeded"))
        rows.append(Row("runtime", "create+start+wait+delete `true`",
                        statistics.median(ours), peer=peer, samples=len(ours)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    print(table(Report(measure(args.runs))))


def _clean(work: Path, roots: Roots) -> None:
    subprocess.run(["umount", "-R", "-l", str(work)], capture_output=True)
    remove_peer_cgroups(roots.id, ("runc", "crun"))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
