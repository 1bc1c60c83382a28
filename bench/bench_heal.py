"""Heal after `kill -9`: from SIGKILL of a container's process to its replacement
running, in a stack of 10 services on their default network (`restart:
unless-stopped`), the daemon at rest between kills. Goal (issue #20): <= 0.15 s.
bench_daemon measures the same in its stack of 1,000. Needs root. bench/run calls
`measure`.

    .venv/bin/python bench/bench_heal.py [--kills 15]
"""

from __future__ import annotations

import argparse
import statistics
import time

import trio
from bench_daemon import heal_time, running
from results import Report, Row, table
from stackd_bench_env import BenchRoot


def measure(root: BenchRoot, kills: int, *, services: int = 10,
            settle: float = 1.0) -> list[Row]:
    d = root.write_stack("heal", services)
    root.stackd("up", "-d", cwd=d)
    try:
        heals = []
        for i in range(kills):
            time.sleep(settle)  # the pass after the last heal is over: a daemon at rest
            before = running(root)
            name = sorted(before)[i % len(before)]
            heals.append(trio.run(heal_time, root, name, before[name]))
    finally:
        root.stackd("down", cwd=d, check=False)
    heal = statistics.median(heals)
    return [Row("heal", f"kill -9 to replacement running ({services} containers)", heal,
                goal="<= 0.15 s", met=heal <= 0.15, samples=len(heals),
                note=f"max {max(heals):.3f} s")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=15)
    args = ap.parse_args()
    root = BenchRoot()
    try:
        rows = measure(root, args.kills)
    finally:
        root.close()
    print(table(Report(rows)))


if __name__ == "__main__":
    main()
