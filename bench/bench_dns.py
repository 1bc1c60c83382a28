"""DNS benchmark: queries per second and latency of stackd's resolver beside dnsmasq.

The resolver process (`stackd.netbridge.dnsd`, on port 53 of 127.77.0.1 playing a
bridge gateway) is started and fed by a `DnsFeed` as the daemon does, with one
service name of three replicas; dnsmasq serves the same three records. A load process
keeps a window of queries in flight from several sockets and times each answer,
against each server in turn for several rounds (interleaved, so the shared host's
changing load falls on both alike). A server's figures count only if every answer
held the three records. Needs root.

The q/s are dnsperf's (C, DNS-OARC's tool) where it is installed, each round of it
followed by a check of the answers; the latencies are the Python loop's. Each server
runs on the last CPU and the load on the others: on two cores, a server left to share
a core with the load is time-sliced with it and answers in ~2.5 ms turns for seconds
at a time, in some runs and not others — dnsmasq and stackd alike — which measures
the scheduler's placement, not the server.

    .venv/bin/python bench/bench_dns.py [--seconds 3] [--rounds 6] [--window 64]
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing as mp
import os
import random
import select
import socket
import statistics
import time

from results import Peer, Row

HOST = "127.0.0.1"


def query(qid: int, name: str = "api") -> bytes:
    from dnslib import DNSRecord

    q = DNSRecord.question(name)
    q.header.id = qid
    return q.pack()


def load(port: int, seconds: float, window: int, nsock: int,
         host: str = HOST) -> tuple[int, list[float], int]:
    """(answered, latencies in s, answers with 3 records) for `seconds` of load."""
    tail = bytes(query(0))[2:]  # every ID's packet, made in ~10 ms, not by dnslib 65,536 times
    packets = [i.to_bytes(2, "big") + tail for i in range(65536)]
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


@functools.cache
def split_cpus() -> tuple[set[int], set[int]]:
    """(the servers' CPUs, the load's): the last CPU, and the rest (all, on one); of
    the CPUs this process had when first asked (it is then pinned to the load's)."""
    cpus = sorted(os.sched_getaffinity(0))
    return {cpus[-1]}, set(cpus[:-1]) or {cpus[-1]}


def pin_server(pid: int) -> None:
    os.sched_setaffinity(pid, split_cpus()[0])


def dnsperf(port: int, seconds: float, window: int, nsock: int,
            host: str = HOST) -> float:
    """NOERROR answers a second with dnsperf (C) keeping `window` queries in flight.
    Not its -v (an answer's latency a line): printing slows its reading of answers,
    dnsmasq's more than ours (1.15x against ~1.0x without), so latencies come from
    `load` instead."""
    import re
    import subprocess
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".queries") as queries:
        queries.write("api A\n")
        queries.flush()
        out = subprocess.run(
            ["dnsperf", "-s", host, "-p", str(port), "-d", queries.name,
             "-q", str(window), "-c", str(nsock), "-l", str(seconds)],
            capture_output=True, text=True, check=True,
            preexec_fn=lambda: os.sched_setaffinity(0, split_cpus()[1])).stdout
    noerror = re.search(r"Response codes:.*?NOERROR (\d+)", out)
    run_time = re.search(r"Run time \(s\):\s+([\d.]+)", out)
    if run_time is None:
        raise SystemExit(f"dnsperf printed no statistics:\n{out}")
    return int(noerror.group(1)) / float(run_time.group(1)) if noerror else 0.0


def checked(port: int, host: str = HOST) -> bool:
    """Every answer to a short burst held the three records."""
    n, _, full = load(port, 0.05, 4, 1, host)
    return n > 0 and full == n


class ProcessResolver:
    """The daemon's way: a DnsFeed writes the records, the resolver process serves them
    on port 53 of a loopback address playing the bridge gateway (needs root)."""

    GATEWAY = "127.77.0.1"

    def __init__(self) -> None:
        import tempfile
        from pathlib import Path

        from stackd.netbridge.dnsfeed import DnsFeed
        from stackd.roots import Roots

        self._tmp = tempfile.TemporaryDirectory()
        roots = Roots(Path(self._tmp.name, "state"), Path(self._tmp.name, "run")).ensure()
        self.roots = roots
        self.feed = DnsFeed(roots)

    async def _feed(self, up: bool) -> None:
        if up:
            await self.feed.listen("bench", self.GATEWAY)
            self.feed.add("bench", "client", HOST, ["client"])  # the querying "container"
            for i in range(3):
                self.feed.add("bench", f"api-{i}", f"10.207.0.{10 + i}",
                              ["api", f"bench-api-{i}"])
        else:
            await self.feed.unlisten("bench")  # the resolver exits
        await self.feed.flush()

    def __enter__(self) -> tuple[str, int]:
        import trio

        trio.run(self._feed, True)
        if not _wait_answers(53, self.GATEWAY):
            self.__exit__()
            raise SystemExit("resolver process: no right answer within 10 s")
        from stackd.netbridge.dnsfeed import resolver_pid

        try:
            pid = resolver_pid(self.roots)
            if pid is not None:
                pin_server(pid)
        except BaseException:
            self.__exit__()
            raise
        return self.GATEWAY, 53

    def __exit__(self, *exc: object) -> None:
        import trio

        try:
            trio.run(self._feed, False)
        finally:
            self._tmp.cleanup()


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
        try:
            if checked(port, host):
                return True
        except ConnectionRefusedError:  # not listening yet
            time.sleep(0.05)
    return False


class _Peer:
    """A server in a forked process (dnsmasq, or the echo/in-process resolver)."""

    def __init__(self, kind: str, target) -> None:  # type: ignore[no-untyped-def]
        self.kind, self.target = kind, target

    def __enter__(self) -> tuple[str, int]:
        self.port = 20000 + os.getpid() % 20000
        ready = mp.Event()
        self.proc = mp.Process(target=self.target, args=(self.port, ready), daemon=True)
        self.proc.start()
        assert self.proc.pid is not None
        pin_server(self.proc.pid)  # dnsmasq, once exec'd: the affinity is kept
        if not ready.wait(10) or not _wait_answers(self.port):
            self.__exit__()
            raise SystemExit(f"{self.kind}: no right answer within 10 s")
        return HOST, self.port

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.join()


def interleaved(servers: dict[str, tuple[str, int]], seconds: float, rounds: int,
                window: int, nsock: int) -> dict[str, tuple[float, float, float]]:
    """{name: (q/s median of rounds, p99 of all answers, share of answers holding the 3
    records)}: the same load against each server in turn, `rounds` times, so a host's
    changing load falls on all alike. The latencies and the answers' check are
    `load`'s; the q/s dnsperf's where it is installed (then followed by a check)."""
    import shutil

    measured_by_dnsperf = shutil.which("dnsperf") is not None
    qps: dict[str, list[float]] = {k: [] for k in servers}
    lats: dict[str, list[float]] = {k: [] for k in servers}
    full: dict[str, list[int]] = {k: [0, 0] for k in servers}
    ours = os.sched_getaffinity(0)
    os.sched_setaffinity(0, split_cpus()[1])  # the Python load is this process
    try:
        for host, port in servers.values():
            load(port, 0.3, window, nsock, host)  # warm-up
        for _ in range(rounds):
            for name, (host, port) in servers.items():
                n, lat, f = load(port, seconds / rounds, window, nsock, host)
                if measured_by_dnsperf:
                    qps[name].append(dnsperf(port, seconds / rounds, window, nsock, host))
                    if not checked(port, host):  # its answers after the load, too
                        f = 0
                else:
                    qps[name].append(n / (seconds / rounds))
                lats[name].extend(lat)
                full[name][0] += f
                full[name][1] += n
    finally:
        os.sched_setaffinity(0, ours)
    out = {}
    for name in servers:
        lat = sorted(lats[name])
        p99 = lat[int(len(lat) * 0.99)] if lat else float("nan")
        out[name] = (statistics.median(qps[name]), p99, full[name][0] / max(full[name][1], 1))
    return out


def measure(seconds: float, window: int = 64, sockets: int = 4, rounds: int = 6) -> list[Row]:
    """The resolver process (what containers talk to) beside dnsmasq, the same load in
    interleaved rounds; a server's q/s counts only if every answer held the 3 records."""
    import contextlib
    import shutil

    mp.set_start_method("fork", force=True)
    peer: Peer = Peer.missing("dnsmasq")
    p99_peer = peer
    with contextlib.ExitStack() as stack:
        servers = {"stackd": stack.enter_context(ProcessResolver())}
        if shutil.which("dnsmasq") is not None:
            try:
                servers["dnsmasq"] = stack.enter_context(_Peer("dnsmasq", serve_dnsmasq))
            except SystemExit as exc:
                peer = p99_peer = Peer.failed("dnsmasq", str(exc))
        got = interleaved(servers, seconds * 2, rounds, window, sockets)
    qps, p99, share = got["stackd"]
    ours_ok = share >= 0.999
    if "dnsmasq" in got:
        dqps, dp99, dshare = got["dnsmasq"]
        if dshare >= 0.999:
            peer, p99_peer = Peer("dnsmasq", "ok", dqps), Peer("dnsmasq", "ok", dp99)
        else:
            peer = p99_peer = Peer.failed("dnsmasq", f"{dshare:.1%} of its answers held "
                                          "the 3 records")
    note = "" if ours_ok else f"only {share:.1%} of answers held the 3 records"
    if shutil.which("dnsperf") is None:  # the Python loop bounds both servers alike
        note = "; ".join(filter(None, [note, "load from Python, not dnsperf (not "
                                       "installed: bench/run --install-peers)"]))
    return [
        Row("dns", f"q/s at {window} in flight", qps, unit="q/s", peer=peer,
            goal=">= dnsmasq", met=(peer.value is not None and qps >= peer.value
                                    and ours_ok) if peer.status == "ok" else None,
            samples=rounds, note=note),
        Row("dns", f"p99 latency at {window} in flight", p99, peer=p99_peer, goal="< 2 ms",
            met=p99 < 0.002 and ours_ok, samples=rounds, note=note),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="of load per server")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--window", type=int, default=64, help="queries in flight")
    ap.add_argument("--sockets", type=int, default=4, help="client sockets")
    args = ap.parse_args()
    for row in measure(args.seconds / 2, args.window, args.sockets, args.rounds):
        peer = f"{row.peer.value:.4g}" if row.peer.value is not None else row.peer.status
        print(f"{row.what:32} stackd {row.value:.4g}   dnsmasq {peer}   {row.note}")


if __name__ == "__main__":
    main()
