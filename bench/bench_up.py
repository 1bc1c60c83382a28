"""`stackd up -d` until every container runs, a no-op `up` and `ps` of the running
stack, and `down`, for N busybox services (`init: true`); beside podman-compose
(driving podman with runc: crun refuses this hybrid-cgroup host) and docker-compose
where its daemon runs, in the same invocation. A peer's `up` counts only once all its
N containers are seen running. Goals (issue #20): 50 services >= 25x faster than
podman-compose; no-op up of 500 < 0.5 s, ps < 0.3 s. Needs root.

    .venv/bin/python bench/bench_up.py [--sizes 50,500] [--peer-sizes 50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

import yaml
from peers import docker_refusal, have, last_line, podman_conf, podman_forget, podman_image
from results import Peer, Report, Row, table
from stackd_bench_env import IMAGE, BenchRoot


def peer_stack(root: BenchRoot, directory: Path, image: str) -> Path:
    stack = yaml.safe_load((directory / "compose.yaml").read_text())
    for service in stack["services"].values():
        service["image"] = image
        service.pop("pull_policy", None)
        service["ulimits"] = {"nofile": 1024, "nproc": 1024}
    path = directory / "peer-compose.yaml"
    path.write_text(yaml.safe_dump(stack))
    return path


def compose_peer(name: str, argv: list[str], ps: list[str], directory: Path, n: int,
                 env: dict[str, str] | None) -> tuple[Peer, Peer]:
    """(up, down) of a compose tool; failed with the reason unless all n run."""
    t0 = time.perf_counter()
    up = subprocess.run([*argv, "up", "-d"], cwd=directory, capture_output=True, text=True,
                        env=env, timeout=1800)
    up_time = time.perf_counter() - t0
    running = subprocess.run(ps, capture_output=True, text=True, env=env).stdout.split()
    try:
        if up.returncode != 0:
            return Peer.failed(name, last_line(up)), Peer.failed(name, "up failed")
        if len(running) != n:
            why = f"{len(running)} of {n} containers running after up"
            return Peer.failed(name, why), Peer.failed(name, why)
    finally:
        t0 = time.perf_counter()
        down = subprocess.run([*argv, "down"], cwd=directory, capture_output=True, text=True,
                              env=env, timeout=1800)
        down_time = time.perf_counter() - t0
    return (Peer.ok(name, [up_time]),
            Peer.ok(name, [down_time]) if down.returncode == 0
            else Peer.failed(name, last_line(down)))


def measure(root: BenchRoot, sizes: list[int], peer_sizes: list[int],
            ps_runs: int = 5) -> list[Row]:
    try:
        return _measure(root, sizes, peer_sizes, ps_runs)
    finally:
        if have("podman"):
            podman_forget(f"localhost/{IMAGE}")


def _measure(root: BenchRoot, sizes: list[int], peer_sizes: list[int],
             ps_runs: int) -> list[Row]:
    rows: list[Row] = []
    podman = None
    docker = docker_refusal()
    if have("podman") and have("podman-compose"):
        podman = podman_image(root.dir / "busybox.tar", IMAGE)
    root.stackd("ps", "--all-projects")  # the daemon started on demand, apart
    stackd = root.stackd_argv()
    for n in sizes:
        d = root.write_stack(f"up{n}", n, init=True)
        up = root.timed("up", "-d", cwd=d)
        listed = root.stackd("ps", "--format", "json", cwd=d).stdout  # a JSON object per line
        rows_ps = [json.loads(line) for line in listed.splitlines()]
        assert sum(r["state"] == "running" for r in rows_ps) == n, f"{len(rows_ps)} of {n}"
        noop = [root.timed("up", "-d", cwd=d) for _ in range(3)]
        ps = []
        for _ in range(ps_runs):
            t0 = time.perf_counter()
            subprocess.run([*stackd, "ps"], cwd=d, env=root.env, check=True,
                           capture_output=True)
            ps.append(time.perf_counter() - t0)
        down = root.timed("down", cwd=d)
        peers_up: list[tuple[Peer, Peer]] = []
        if n in peer_sizes:
            if podman is None:
                missing = Peer.missing("podman-compose")
                peers_up.append((missing, missing))
            else:
                path = peer_stack(root, d, podman)
                env = podman_conf(root.dir)
                peers_up.append(compose_peer(
                    "podman-compose (runc)", ["podman-compose", "-f", path.name],
                    ["podman", "ps", "-q", "--filter", f"label=io.podman.compose.project=up{n}",
                     "--filter", "status=running"], d, n, env))
            if docker is None and have("docker-compose"):
                path = peer_stack(root, d, f"localhost/{IMAGE}")
                peers_up.append(compose_peer(
                    "docker-compose", ["docker-compose", "-f", path.name],
                    ["docker", "ps", "-q", "--filter",
                     f"label=com.docker.compose.project=up{n}"], d, n, None))
            else:
                why = ("not installed" if not have("docker-compose")
                       else docker or "not installed")
                failed = Peer("docker-compose", "not installed" if "not installed" in why
                              else "failed", None, why.removeprefix("failed: "))
                peers_up.append((failed, failed))
        what = f"up -d {n} services (init: true)"
        for peer_up, _ in peers_up or [(Peer("-", "none"), None)]:
            goal = "ratio <= 0.04 (25x)" if n == 50 and "podman" in peer_up.name else ""
            rows.append(Row("up", what, up, peer=peer_up, goal=goal,
                            met=(peer_up.value is not None and up * 25 <= peer_up.value)
                            if goal else None, samples=1))
        for _, peer_down in peers_up:
            rows.append(Row("up", f"down {n} services", down, peer=peer_down, samples=1))
        goal_noop, goal_ps = (0.5, 0.3) if n >= 500 else (None, None)
        rows.append(Row("up", f"no-op up -d of {n}", statistics.median(noop),
                        goal=f"< {goal_noop} s at 500" if goal_noop else "",
                        met=statistics.median(noop) < goal_noop if goal_noop else None,
                        samples=len(noop)))
        rows.append(Row("up", f"ps of {n}", statistics.median(ps),
                        goal=f"< {goal_ps} s at 500" if goal_ps else "",
                        met=statistics.median(ps) < goal_ps if goal_ps else None,
                        samples=len(ps)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="50,500")
    ap.add_argument("--peer-sizes", default="50", help="sizes the peers run too ('' for none)")
    args = ap.parse_args()
    root = BenchRoot()
    try:
        rows = measure(root, [int(x) for x in args.sizes.split(",") if x],
                       [int(x) for x in args.peer_sizes.split(",") if x])
    finally:
        root.close()
    print(table(Report(rows)))


if __name__ == "__main__":
    main()
