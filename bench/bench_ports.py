"""Published-port benchmark: TCP throughput through a DNAT'ed host port beside direct.

One network, one "container" (a network namespace attached like any container,
running a discard server), and a client on the host sending for a few seconds, in the
same run: straight to the container's address, then through the published port on
127.0.0.1, on the host's own address, and from "another host" (a namespace behind a
veth, as the integration tests build one). Goal: published >= 0.9 of direct. Needs root;
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
from stackd.hostnames import device_name
from stackd.netbridge import Attachment, Networks, NetworkSpec, PortBinding
from stackd.netbridge import netns as netns_files
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


SENDER = """
import socket, sys, time
host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
chunk = b"\\0" * (1 << 18)
with socket.create_connection((host, port), timeout=5) as s:
    sent, t0 = 0, time.perf_counter()
    while time.perf_counter() < t0 + seconds:
        s.sendall(chunk)
        sent += len(chunk)
print(sent / (time.perf_counter() - t0))
"""


def make_client_host(roots: Roots, tmp: Path) -> tuple[Path, str, str]:
    """A namespace behind a veth playing another host: (netns path, host end, host address)."""
    path = tmp / "client-ns"
    netns_files.create(path)
    host_if = device_name(roots.id, "t", "bench-client")
    peer_if = device_name(roots.id, "t", "bench-client/peer")
    prefix = f"10.208.{250 + int(roots.id, 16) % 5}"

    def inside(*cmd: str) -> None:
        subprocess.run(["nsenter", f"--net={path}", *cmd], check=True)

    inside("ip", "link", "add", host_if, "type", "veth", "peer", "name", peer_if)
    inside("ip", "link", "set", host_if, "netns", "1")
    inside("ip", "link", "set", "lo", "up")
    inside("ip", "addr", "add", f"{prefix}.2/24", "dev", peer_if)
    inside("ip", "link", "set", peer_if, "up")
    inside("ip", "route", "add", "default", "via", f"{prefix}.1")
    subprocess.run(["ip", "addr", "add", f"{prefix}.1/24", "dev", host_if], check=True)
    subprocess.run(["ip", "link", "set", host_if, "up"], check=True)
    Path(f"/proc/sys/net/ipv4/conf/{host_if}/forwarding").write_text("1")
    return path, host_if, f"{prefix}.1"


def send_from(netns: Path, host: str, port: int, seconds: float) -> float:
    out = subprocess.run(["nsenter", f"--net={netns}", sys.executable, "-c", SENDER, host,
                          str(port), str(seconds)], capture_output=True, text=True, check=True)
    return float(out.stdout)


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
            client_ns, _, client_host_ip = make_client_host(roots, Path(tmp))
            paths = {"direct to container": (None, addr.ip, 5001),
                     "published, 127.0.0.1": (None, "127.0.0.1", port),
                     f"published, {host_address()}": (None, host_address(), port),
                     "published, from another host": (client_ns, client_host_ip, port)}
            results: dict[str, list[float]] = {k: [] for k in paths}
            for _ in range(args.rounds):  # interleaved, so drift on a shared host hits all
                for name, (ns, h, p) in paths.items():
                    if ns is None:
                        bps = await trio.to_thread.run_sync(send_for, h, p, args.seconds)
                    else:
                        bps = await trio.to_thread.run_sync(send_from, ns, h, p, args.seconds)
                    results[name].append(bps)
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
            subprocess.run(["ip", "link", "del", device_name(roots.id, "t", "bench-client")],
                           capture_output=True)
            netns_files.remove(Path(tmp) / "client-ns")
            await nets.teardown()
            db.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    trio.run(main, ap.parse_args())
