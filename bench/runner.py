"""bench/run: every benchmark in one invocation, one table of stackd's figures beside
each peer's measured in the same run, the ratio and issue #20's goal; also JSON under
bench/out/. Benchmarks are the bench_* modules' `measure` functions.

    bench/run [--install-peers] [--quick] [--only NAME...]   (runtime run_rm up daemon
               heal memory dns ports pull)

--quick: tiny sizes and few samples (a smoke test: the figures mean little).
--install-peers: podman, runc, crun, skopeo, dnsmasq, dnsperf (the DNS load) from
Debian's packages and podman-compose, py-spy from PyPI, before measuring. Needs root.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from results import Report, Row, save, table
from stackd_bench_env import BenchRoot

OUT = Path(__file__).resolve().parent / "out"
APT_PEERS = ["podman", "runc", "crun", "skopeo", "dnsmasq-base", "dnsperf"]
PIP_PEERS = ["podman-compose", "py-spy"]


def install_peers() -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, env=env)  # a fresh machine has no lists
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *APT_PEERS],
                   check=True, env=env)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *PIP_PEERS], check=True)


def runtime(quick: bool) -> list[Row]:
    import bench_runtime_start

    return bench_runtime_start.measure(3 if quick else 30)


def run_rm(quick: bool) -> list[Row]:
    import bench_run_rm

    return _with_root(lambda root: bench_run_rm.measure(root, 2 if quick else 15))


def up(quick: bool) -> list[Row]:
    import bench_up

    sizes, peer_sizes = ([3], [3]) if quick else ([50, 500], [50])
    return _with_root(lambda root: bench_up.measure(root, sizes, peer_sizes,
                                                    ps_runs=2 if quick else 5))


def daemon(quick: bool) -> list[Row]:
    import bench_daemon

    return _with_root(lambda root: bench_daemon.measure(
        root, 10 if quick else 1000, 2 if quick else 7, idle_seconds=0.5 if quick else 10,
        with_podman=not quick, settle=0.5 if quick else 3.0))


def heal(quick: bool) -> list[Row]:
    import bench_heal

    return _with_root(lambda root: bench_heal.measure(root, 3 if quick else 15))


def memory(quick: bool) -> list[Row]:
    import bench_monitor_memory

    return bench_monitor_memory.measure(10 if quick else 100, with_podman=not quick)


def dns(quick: bool) -> list[Row]:
    import bench_dns

    return bench_dns.measure(0.5 if quick else 3.0)


def ports(quick: bool) -> list[Row]:
    import bench_ports

    return bench_ports.measure(0.25 if quick else 0.3, 1 if quick else 32)


def pull(quick: bool) -> list[Row]:
    import bench_pull

    return bench_pull.measure(8 if quick else 100, 4, 1 if quick else 3)


def _with_root(fn: Callable[[BenchRoot], list[Row]]) -> list[Row]:
    root = BenchRoot()
    try:
        return fn(root)
    finally:
        root.close()


BENCHES: dict[str, Callable[[bool], list[Row]]] = {
    "runtime": runtime, "run_rm": run_rm, "up": up, "daemon": daemon, "heal": heal,
    "memory": memory, "dns": dns, "ports": ports, "pull": pull}
# Still their own scripts, not yet in this table: bench_rolling, bench_scheduler.
NOT_YET: dict[str, str] = {}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--install-peers", action="store_true")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    ap.add_argument("--only", nargs="+", choices=sorted(BENCHES), metavar="NAME",
                    help=f"some of: {', '.join(BENCHES)}")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/run needs root (containers, cgroups, networks)", file=sys.stderr)
        return 2
    if args.install_peers:
        install_peers()
    report = Report(host={"kernel": platform.release(), "cpus": str(os.cpu_count()),
                          "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
                          "quick": str(args.quick)})
    failed = 0
    for name in args.only or list(BENCHES):
        t0 = time.perf_counter()
        try:
            report.add(BENCHES[name](args.quick))
        except Exception as exc:  # one benchmark's failure is a row, not the end
            traceback.print_exc()
            why = f"failed: {type(exc).__name__}: {exc}"
            report.add([Row(name, "(benchmark)", None, note=why)])
            failed += 1
        print(f"{name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    if not args.only:
        for name, where in NOT_YET.items():
            report.add([Row(name, "(not in bench/run yet)", None, note=f"run {where}")])
    path = save(report, OUT, time.strftime("%Y%m%dT%H%M%S"))
    print(table(report))
    print(f"\nload average at the start: {report.host['load']}; JSON: {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
