"""Published-port benchmark: TCP throughput through a DNAT'ed host port beside direct.

One network, one "container" (a network namespace attached like any container,
running a discard server), and a client on the host sending for a few seconds, in the
same run: straight to the container's address, then through the published port on
127.0.0.1 and on the host's own address. Goal: published >= 0.9 of direct. Needs root;
everything it makes carries its own state root's id and is removed at the end.

    sudo .venv/bin/python bench/bench_ports.py [--seconds 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

import stackd.state.allocations  # noqa: F401  (registers netbridge's tables)
from stackd.netbridge import Attachment, Networks, NetworkSpec, PortBinding
from stackd.roots import Roots
from stackd.state.db import StateDB

SINK = """
import socket, threading
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 5001)); srv.listen(16)
def drain(c):
    buf = bytearray(1 << 20)
    while c.recv_into(buf):
        pass
    c.close()
while True:
    c, _ = srv.accept()
    threading.Thread(target=drain, args=(c,), daemon=True).start()
"""


def send_for(host: str, port: int, seconds: float) -> float:
    """Bytes per second one TCP connection carries to host:port."""
    chunk = b"\0" * (1 << 18)
    with socket.create_connection((host, port), timeout=5) as s:
        sent = 0
        t0 = time.perf_counter()
        deadline = t0 + seconds
        while time.perf_counter() < deadline:
            s.sendall(chunk)
            sent += len(chunk)
        return sent / (time.perf_counter() - t0)


def host_address() -> str:
    out = subprocess.run(["ip", "-o", "route", "get", "192.0.2.255"], capture_output=True,
                         text=True).stdout.split()
    return out[out.index("src") + 1] if "src" in out else "127.0.0.1"


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="stackd-bench-ports-") as tmp:
        roots = Roots(Path(tmp) / "state", Path(tmp) / "run").ensure()
        db = StateDB.open(roots.state / "stackd.db")
        nets = Networks(roots, db)
        sink = None
        try:
            await nets.ensure_network(NetworkSpec("bench_net", "bench", "net"))
            path = await nets.create_netns("sink")
            [addr] = await nets.attach("sink", path, [Attachment("bench_net")])
            port = 30000 + int(roots.id, 16) % 20000
            binding = PortBinding(port, 5001)
            nets.check_ports_free([binding])
            await nets.publish("sink", [binding], addr.ip)
            sink = subprocess.Popen(["nsenter", f"--net={path}", sys.executable, "-c", SINK])
            await trio.sleep(0.5)
            paths = {"direct to container": (addr.ip, 5001),
                     "published, 127.0.0.1": ("127.0.0.1", port),
                     f"published, {host_address()}": (host_address(), port)}
            results: dict[str, list[float]] = {k: [] for k in paths}
            for _ in range(args.rounds):  # interleaved, so drift on a shared host hits all
                for name, (h, p) in paths.items():
                    results[name].append(
                        await trio.to_thread.run_sync(send_for, h, p, args.seconds))
            best = {k: max(v) for k, v in results.items()}
            direct = best["direct to container"]
            print(f"{args.rounds} rounds x {args.seconds:.0f} s, best of rounds, one connection")
            for name, bps in best.items():
                print(f"  {name:28} {bps * 8 / 1e9:7.2f} Gbit/s   {bps / direct:5.2f} of direct")
            worst = min(v for k, v in best.items() if k != "direct to container") / direct
            print(f"goal published >= 0.9 of direct: {'met' if worst >= 0.9 else 'NOT met'}"
                  f" ({worst:.2f})")
        finally:
            if sink is not None:
                sink.kill()
                sink.wait()
            await nets.teardown()
            db.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    trio.run(main, ap.parse_args())
