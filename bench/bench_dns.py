"""DNS benchmark: queries per second and latency of stackd's embedded resolver.

The resolver runs in its own process, serving one network whose service name has
three replicas; a load process keeps a window of queries in flight from several
sockets and times each answer. Beside it, in the same run, the same load against an
echo server built on the resolver's own UDP loop: the transport's ceiling, so the
ratio shows what parsing, looking up and answering cost. Goal: >= 10,000 q/s.
It listens on a loopback address, which plays the bridge gateway. As root it also
measures the real thing: the root's resolver process (`stackd.netbridge.dnsd`, on
port 53 of 127.77.0.1) started and fed by a `DnsFeed`, as the daemon does.

    .venv/bin/python bench/bench_dns.py [--seconds 3] [--window 64] [--sockets 4]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import select
import socket
import statistics
import time

from results import Peer, Row

HOST = "127.0.0.1"


def serve_resolver(port: int, ready: mp.Event) -> None:  # type: ignore[valid-type]
    import trio

    from stackd.netbridge.dns import Resolver

    async def main() -> None:
        res = Resolver(upstreams=[], port=port)
        res.add("bench", "client", HOST, ["client"])  # the querying "container"
        for i in range(3):
            res.add("bench", f"api-{i}", f"10.207.0.{10 + i}", ["api", f"bench-api-{i}"])
        async with trio.open_nursery() as nursery:
            await nursery.start(res.serve)
            await res.listen("bench", HOST)
            ready.set()  # type: ignore[attr-defined]

    trio.run(main)


def serve_echo(port: int, ready: mp.Event) -> None:  # type: ignore[valid-type]
    """The resolver's own UDP loop (non-blocking socket drained in batches), echoing."""
    import trio

    async def main() -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind((HOST, port))
        ready.set()  # type: ignore[attr-defined]
        while True:
            await trio.lowlevel.wait_readable(sock)
            for _ in range(256):
                try:
                    data, addr = sock.recvfrom(4096)
                except BlockingIOError:
                    break
                sock.sendto(data, addr)
            await trio.lowlevel.checkpoint()

    trio.run(main)


def query(qid: int, name: str = "api") -> bytes:
    from dnslib import DNSRecord

    q = DNSRecord.question(name)
    q.header.id = qid
    return q.pack()


def load(port: int, seconds: float, window: int, nsock: int,
         host: str = HOST) -> tuple[int, list[float], int]:
    """(answered, latencies in s, answers with 3 records) for `seconds` of load."""
    packets = [query(i) for i in range(65536)]
    socks = []
    for _ in range(nsock):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect((host, port))
        s.setblocking(False)
        socks.append(s)
    sent: dict[tuple[int, int], float] = {}
    latencies: list[float] = []
    full = 0
    next_id = random.randrange(65536)
    deadline = time.perf_counter() + seconds
    per_sock = max(1, window // nsock)
    inflight = [0] * nsock
    while time.perf_counter() < deadline:
        for k, s in enumerate(socks):
            while inflight[k] < per_sock:
                next_id = (next_id + 1) % 65536
                sent[(k, next_id)] = time.perf_counter()
                s.send(packets[next_id])
                inflight[k] += 1
        readable, _, _ = select.select(socks, [], [], 0.5)
        if not readable:  # lost packets: forget them, keep the window full
            sent.clear()
            inflight = [0] * nsock
            continue
        now = time.perf_counter()
        for s in readable:
            k = socks.index(s)
            while True:
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    break
                t = sent.pop((k, int.from_bytes(data[:2], "big")), None)
                if t is not None:
                    latencies.append(now - t)
                    inflight[k] -= 1
                    full += data[7] == 3  # ANCOUNT low byte
    return len(latencies), latencies, full


def run(kind: str, target, args: argparse.Namespace) -> tuple[float, float, float, int]:  # type: ignore[no-untyped-def]
    port = 20000 + os.getpid() % 20000
    ready = mp.Event()
    proc = mp.Process(target=target, args=(port, ready), daemon=True)
    proc.start()
    try:
        if not ready.wait(10) or not _wait_answers(port):
            raise SystemExit(f"{kind}: no right answer within 10 s")
        load(port, 0.3, args.window, args.sockets)  # warm-up
        n, lat, full = load(port, args.seconds, args.window, args.sockets)
    finally:
        proc.kill()
        proc.join()
    lat.sort()
    p50 = statistics.median(lat) if lat else float("nan")
    p99 = lat[int(len(lat) * 0.99)] if lat else float("nan")
    return n / args.seconds, p50, p99, full


def run_process_resolver(args: argparse.Namespace) -> tuple[float, float, float, int]:
    """The daemon's way: a DnsFeed writes the records, the resolver process serves them."""
    import tempfile
    from pathlib import Path

    import trio

    from stackd.netbridge.dnsfeed import DnsFeed
    from stackd.roots import Roots

    gateway = "127.77.0.1"
    with tempfile.TemporaryDirectory() as tmp:
        roots = Roots(Path(tmp, "state"), Path(tmp, "run")).ensure()
        feed = DnsFeed(roots)

        async def feed_it(up: bool) -> None:
            if up:
                await feed.listen("bench", gateway)
                feed.add("bench", "client", HOST, ["client"])  # the querying "container"
                for i in range(3):
                    feed.add("bench", f"api-{i}", f"10.207.0.{10 + i}",
                             ["api", f"bench-api-{i}"])
            else:
                await feed.unlisten("bench")  # the resolver exits
            await feed.flush()

        trio.run(feed_it, True)
        try:
            load(53, 0.3, args.window, args.sockets, gateway)  # warm-up
            n, lat, full = load(53, args.seconds, args.window, args.sockets, gateway)
        finally:
            trio.run(feed_it, False)
    lat.sort()
    p50 = statistics.median(lat) if lat else float("nan")
    p99 = lat[int(len(lat) * 0.99)] if lat else float("nan")
    return n / args.seconds, p50, p99, full


def serve_dnsmasq(port: int, ready: mp.Event) -> None:  # type: ignore[valid-type]
    """dnsmasq with the same three records for `api`, nothing upstream, no cache limit."""
    import shutil

    records = [f"--host-record=api,10.207.0.{10 + i}" for i in range(3)]
    ready.set()  # type: ignore[attr-defined]
    os.execv(shutil.which("dnsmasq") or "dnsmasq", [
        "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
        "--no-hosts", f"--port={port}", f"--listen-address={HOST}", "--bind-interfaces",
        "--user=root", "--pid-file=", *records])


def _wait_answers(port: int, host: str = HOST, seconds: float = 10.0) -> bool:
    """The server answers `api` with its three records (or the time is up)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        n, _, full = load(port, 0.1, 1, 1, host)
        if n and full == n:
            return True
    return False


def measure(seconds: float, window: int = 64, sockets: int = 4) -> list[Row]:
    """The resolver process (what containers talk to) beside dnsmasq, same load, same
    run; a peer's q/s counts only if every answer it gave held the three records."""
    import shutil

    mp.set_start_method("fork", force=True)
    args = argparse.Namespace(seconds=seconds, window=window, sockets=sockets)
    qps, _, p99, full = run_process_resolver(args)
    ours_ok = full >= 0.99 * qps * seconds
    peer: Peer
    p99_peer = Peer.missing("dnsmasq")
    if shutil.which("dnsmasq") is None:
        peer = Peer.missing("dnsmasq")
    else:
        try:
            dqps, _, dp99, dfull = run("dnsmasq", serve_dnsmasq, args)
            peer = (Peer("dnsmasq", "ok", dqps) if dfull >= 0.99 * dqps * seconds else
                    Peer.failed("dnsmasq", f"{dfull} of {dqps * seconds:.0f} answers held "
                                "the 3 records"))
            p99_peer = Peer("dnsmasq", "ok", dp99) if peer.status == "ok" else peer
        except SystemExit as exc:
            peer = p99_peer = Peer.failed("dnsmasq", str(exc))
    note = "" if ours_ok else f"only {full} answers held the 3 records"
    return [
        Row("dns", f"q/s at {window} in flight", qps, unit="q/s", peer=peer,
            goal=">= dnsmasq", met=(peer.value is not None and qps >= peer.value
                                    and ours_ok) if peer.status == "ok" else None,
            note=note),
        Row("dns", f"p99 latency at {window} in flight", p99, peer=p99_peer, goal="< 2 ms",
            met=p99 < 0.002 and ours_ok, note=note),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--window", type=int, default=64, help="queries in flight")
    ap.add_argument("--sockets", type=int, default=4, help="client sockets")
    args = ap.parse_args()
    mp.set_start_method("fork")
    qps, p50, p99, full = run("stackd resolver", serve_resolver, args)
    eqps, ep50, ep99, _ = run("trio UDP echo", serve_echo, args)
    print(f"window {args.window} over {args.sockets} sockets, {args.seconds:.0f} s each, "
          f"{os.cpu_count()} cores")
    print(f"{'':18} {'q/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    print(f"{'stackd resolver':18} {qps:9.0f} {p50 * 1e3:8.3f} {p99 * 1e3:8.3f}"
          f"   ({full / max(qps * args.seconds, 1):.0%} answers with all 3 replicas)")
    print(f"{'trio UDP echo':18} {eqps:9.0f} {ep50 * 1e3:8.3f} {ep99 * 1e3:8.3f}")
    judged = qps
    if os.geteuid() == 0:
        pqps, pp50, pp99, pfull = run_process_resolver(args)
        print(f"{'resolver process':18} {pqps:9.0f} {pp50 * 1e3:8.3f} {pp99 * 1e3:8.3f}"
              f"   ({pfull / max(pqps * args.seconds, 1):.0%} answers with all 3 replicas;"
              " fed by a DnsFeed)")
        judged = pqps  # what containers talk to
    print(f"resolver / echo: {qps / eqps:.2f}   goal >= 10,000 q/s: "
          f"{'met' if judged >= 10_000 else 'NOT met'}")


if __name__ == "__main__":
    main()
