"""`stackd up -d` until every container runs, and `down`, for 10, 50 and 100 busybox
services; beside podman-compose driving podman in the same run when both are installed;
and a no-op `up` of the 100-service stack. Goals: 50 services up >= 10x faster than
podman-compose; the no-op up under 0.5 s. Needs root.

    .venv/bin/python bench/bench_up.py [--sizes 10,50,100]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time

import yaml
from stackd_bench_env import IMAGE, BenchRoot, have


def podman_compose(root: BenchRoot, directory, n: int) -> tuple[float, float] | None:
    if not (have("podman") and have("podman-compose")):
        return None
    tar = root.dir / "busybox.tar"
    subprocess.run(["podman", "import", str(tar), f"localhost/{IMAGE}"], check=True,
                   capture_output=True)
    stack = yaml.safe_load((directory / "compose.yaml").read_text())
    for service in stack["services"].values():
        service["image"] = f"localhost/{IMAGE}"
        # podman asks for nofile/nproc above this host's hard limits (root lacks
        # CAP_SYS_RESOURCE here) and its runtime then refuses to start anything.
        service["ulimits"] = {"nofile": 1024, "nproc": 1024}
    (directory / "podman-compose.yaml").write_text(yaml.safe_dump(stack))
    # crun (podman's default here) refuses this hybrid-cgroup host; runc does not.
    conf = directory / "containers.conf"
    conf.write_text('[engine]\nruntime = "runc"\n')
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    t0 = time.perf_counter()
    subprocess.run(["podman-compose", "-f", "podman-compose.yaml", "up", "-d"], cwd=directory,
                   check=True, capture_output=True, env=env)
    up = time.perf_counter() - t0
    t0 = time.perf_counter()
    subprocess.run(["podman-compose", "-f", "podman-compose.yaml", "down"], cwd=directory,
                   check=True, capture_output=True, env=env)
    return up, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10,50,100")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    root = BenchRoot()
    results = []
    try:
        # The daemon starts on demand with the first command; time that once, apart,
        # so every size below is measured against a running daemon.
        t0 = time.perf_counter()
        root.stackd("ps", "--all-projects")
        cold = time.perf_counter() - t0
        for n in sizes:
            d = root.write_stack(f"up{n}", n)
            up = root.timed("up", "-d", cwd=d)
            running = json.loads(root.stackd("ps", "--format", "json", cwd=d).stdout)
            assert len(running) == n, f"{len(running)} of {n} running"
            noop = root.timed("up", "-d", cwd=d)
            down = root.timed("down", cwd=d)
            peer = podman_compose(root, d, n)
            results.append((n, up, noop, down, peer))
    finally:
        root.close()
    print(f"daemon started on demand by the first command: {cold:.2f}s")
    print(f"{'services':>8} {'up -d':>8} {'no-op up':>9} {'down':>8}   podman-compose up/down")
    for n, up, noop, down, peer in results:
        line = f"{n:>8} {up:>7.2f}s {noop:>8.2f}s {down:>7.2f}s   "
        if peer is None:
            line += "(podman-compose not installed: pip install podman-compose)"
        else:
            line += f"{peer[0]:.2f}s / {peer[1]:.2f}s  → stackd {peer[0] / up:.1f}x faster up"
        print(line)


if __name__ == "__main__":
    main()
