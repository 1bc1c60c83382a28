"""`stackd run --rm IMG true`, start to exit code, with no network and on the default
bridge, beside `podman run --rm` (with runc; crun's refusal is reported) and docker
where its daemon runs, interleaved in one invocation. Goal: <= 0.5x podman's time.

Every tool is first verified: a run that must print a marker (and, on a bridge, show
an eth0 address) before its `true` runs are timed; each timed run's exit code is
checked too.

    .venv/bin/python bench/bench_run_rm.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from collections.abc import Callable

from peers import (
    PODMAN_ULIMITS,
    docker_refusal,
    have,
    last_line,
    podman_forget,
    podman_image,
)
from results import Peer, Report, Row, table
from stackd_bench_env import IMAGE, BenchRoot

GOAL = 0.5
CHECK = "echo marker-$((6*7)); ip -o -4 addr show | grep -c ' eth0 ' || true"


class Tool:
    """One way to run a container: its command for a network mode, verified once."""

    def __init__(self, name: str, argv: Callable[[str, list[str]], list[str]],
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.refused: dict[str, str] = {}

    def verify(self, network: str) -> None:
        proc = subprocess.run(self.argv(network, ["sh", "-c", CHECK]), capture_output=True,
                              text=True, env=self.env, stdin=subprocess.DEVNULL, timeout=120)
        lines = proc.stdout.split()
        want_eth0 = "1" if network == "bridge" else "0"
        if proc.returncode != 0:
            self.refused[network] = last_line(proc)
        elif lines[:1] != ["marker-42"] or lines[1:2] != [want_eth0]:
            self.refused[network] = f"ran, but printed {proc.stdout.strip()[:80]!r}"

    def sample(self, network: str) -> float | None:
        t0 = time.perf_counter()
        proc = subprocess.run(self.argv(network, ["true"]), capture_output=True, text=True,
                              env=self.env, stdin=subprocess.DEVNULL, timeout=120)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            self.refused[network] = f"a timed run failed: {last_line(proc)}"
            return None
        return elapsed


def measure(root: BenchRoot, runs: int) -> list[Row]:
    stackd_cmd = root.stackd_argv()

    def ours(network: str, cmd: list[str]) -> list[str]:
        net = "none" if network == "none" else "default"
        return [*stackd_cmd, "run", "--rm", "--network", net, IMAGE, *cmd]

    tools = [Tool("stackd", ours, root.env)]
    if have("podman"):
        image = podman_image(root.dir / "busybox.tar", IMAGE)
        for runtime in ("runc", "crun"):
            def theirs(network: str, cmd: list[str], runtime: str = runtime) -> list[str]:
                net = "none" if network == "none" else "bridge"
                return ["podman", "run", "--rm", "--runtime", runtime, "--network", net,
                        *PODMAN_ULIMITS, image, *cmd]
            tools.append(Tool(f"podman ({runtime})", theirs))
    refusal = docker_refusal()
    if refusal is None:
        def docker(network: str, cmd: list[str]) -> list[str]:
            net = "none" if network == "none" else "bridge"
            return ["docker", "run", "--rm", "--network", net, f"localhost/{IMAGE}", *cmd]
        subprocess.run(["docker", "import", str(root.dir / "busybox.tar"),
                        f"localhost/{IMAGE}"], capture_output=True, check=True)
        tools.append(Tool("docker", docker))
    samples: dict[tuple[str, str], list[float]] = {}
    try:
        for network in ("none", "bridge"):
            for tool in tools:
                tool.verify(network)
            for i in range(runs + 1):  # the first warms caches (and the daemon's imports)
                for tool in tools:
                    if network in tool.refused:
                        continue
                    t = tool.sample(network)
                    if t is not None and i > 0:
                        samples.setdefault((tool.name, network), []).append(t)
    finally:
        if have("podman"):
            podman_forget(f"localhost/{IMAGE}")
    rows = []
    for network in ("none", "bridge"):
        what = f"run --rm IMG true ({network})"
        stackd = tools[0]
        mine = samples.get(("stackd", network))
        if network in stackd.refused or not mine:
            rows.append(Row("run_rm", what, None,
                            note=f"failed: {stackd.refused.get(network, '')}"))
            continue
        value = statistics.median(mine)
        peers = [_peer(t, network, samples) for t in tools[1:]]
        if not have("podman"):
            peers.append(Peer.missing("podman"))
        if refusal is not None:
            peers.append(Peer("docker", "not installed" if refusal == "not installed"
                              else "failed", None, refusal.removeprefix("failed: ")))
        podman = next((p for p in peers if p.name == "podman (runc)" and p.status == "ok"),
                      None)
        met = value <= GOAL * podman.value if podman and podman.value else None
        for peer in peers or [Peer.missing("podman")]:
            goal = f"<= {GOAL}x podman" if peer.name == "podman (runc)" else ""
            rows.append(Row("run_rm", what, value, peer=peer, goal=goal,
                            met=met if goal else None, samples=len(mine)))
    return rows


def _peer(tool: Tool, network: str, samples: dict[tuple[str, str], list[float]]) -> Peer:
    if network in tool.refused:
        return Peer.failed(tool.name, tool.refused[network])
    return Peer.ok(tool.name, samples[(tool.name, network)])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    root = BenchRoot()
    try:
        rows = measure(root, args.runs)
    finally:
        root.close()
    print(table(Report(rows)))


if __name__ == "__main__":
    main()
