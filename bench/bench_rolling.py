"""Rolling updates under load: the time to roll 3 and 20 replicas of a busybox httpd
service behind its published port (start-first, parallelism 1 and 5), and the
requests that failed meanwhile, beside a plain `up --force-recreate` of the same
service without update_config, in the same run. A request loop (fresh connection per
request, on 127.0.0.1) runs through each update. Goal: zero failed requests for the
rolling updates. Needs root.

    .venv/bin/python bench/bench_rolling.py [--replicas 3,20]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from stackd_bench_env import IMAGE, BenchRoot  # puts tests/ on sys.path
from support.freeaddrs import free_port
from support.rolling import RequestLoop, wait_serving

STACK = """\
name: {name}
services:
  web:
    image: {image}
    pull_policy: never
    command: ["sh", "-c", "mkdir -p /www && echo $$VERSION > /www/index.html &&
      exec httpd -f -p 80 -h /www"]
    environment:
      VERSION: ${{VERSION}}
    stop_grace_period: 1s
    ports: ["127.0.0.1:{port}:80"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]
      interval: 1s
      timeout: 2s
      retries: 1
    deploy:
      replicas: {replicas}
{update}"""

UPDATE = """\
      update_config:
        parallelism: {parallelism}
        order: start-first
        monitor: 0s
"""


def wait_ready(root: BenchRoot, d: Path, replicas: int) -> None:
    deadline = time.monotonic() + 120
    while True:
        listed = root.stackd("ps", "--format", "json", cwd=d).stdout  # a JSON object per line
        rows = [json.loads(line) for line in listed.splitlines()]
        if sum(1 for r in rows if r.get("health") == "healthy") == replicas:
            return
        assert time.monotonic() < deadline, "replicas not healthy"
        time.sleep(0.2)


def one(root: BenchRoot, replicas: int, parallelism: int | None
        ) -> tuple[float, int, int, str]:
    """(seconds the update took, requests served, requests failed, the first failure)."""
    name = f"roll{replicas}{'p' + str(parallelism) if parallelism else 'force'}"
    d = root.dir / name
    d.mkdir()
    port = free_port()
    update = UPDATE.format(parallelism=parallelism) if parallelism else ""
    (d / "compose.yaml").write_text(STACK.format(name=name, image=IMAGE, port=port,
                                                 replicas=replicas, update=update))
    root.stackd("up", "-d", "--wait", cwd=d, env={"VERSION": "one"})
    # Every replica ready (healthy) before the clock starts: `up` returns once they run.
    wait_ready(root, d, replicas)
    wait_serving(port, 1, timeout=120)
    args = ("up", "-d", "--wait") if parallelism else ("up", "-d", "--wait",
                                                       "--force-recreate")
    with RequestLoop(port) as loop:
        time.sleep(0.5)
        t0 = time.perf_counter()
        root.stackd(*args, cwd=d, env={"VERSION": "two"})
        took = time.perf_counter() - t0
        time.sleep(0.5)
    root.stackd("down", cwd=d, check=False)
    return took, len(loop.bodies), len(loop.failures), (loop.failures or [""])[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--replicas", default="3,20")
    args = ap.parse_args()
    root = BenchRoot()
    rows = []
    try:
        for n in (int(x) for x in args.replicas.split(",")):
            for parallelism in (1, 5, None):
                if parallelism is not None and parallelism > n:
                    continue
                rows.append((n, parallelism, *one(root, n, parallelism)))
    finally:
        root.close()
    print(f"{'replicas':>8}  {'how':<28} {'seconds':>8} {'requests':>9} {'failed':>7}")
    for n, parallelism, took, served, failed, first in rows:
        how = (f"rolling, start-first, par {parallelism}" if parallelism
               else "up --force-recreate")
        print(f"{n:>8}  {how:<28} {took:>7.2f}s {served + failed:>9} {failed:>7}  {first[:60]}")


if __name__ == "__main__":
    main()
