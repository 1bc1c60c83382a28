"""The embedded DNS server: service, container and alias names, per network.

One `Resolver` serves every network of a state root. It listens on each bridge's
gateway address, port 53, UDP and TCP, in the host's network namespace (containers'
resolv.conf names their first network's gateway). A query's source address tells
which container asks; it is answered only with names of containers that share a
network with it, each with its address on that shared network. Every other name is
forwarded to the host's upstream resolvers. Answers carry TTL 0 and list every
replica, rotated per query, so a scale change is visible on the next query.

The daemon does not serve it itself: the resolver process (`dnsd.py`) runs this class,
fed by the daemon's `DnsFeed` (`dnsfeed.py`) through a records file (`Records.table`),
so containers keep their names while the daemon is stopped. `Networks` drives either
through the same calls (`DnsSink`); an in-process `Resolver` is what tests and the
benchmark run.
"""

from __future__ import annotations

import contextlib
import errno
import socket as pysocket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import trio
from dnslib import QTYPE, RCODE, RR, A, DNSRecord

from stackd.errors import HostError
from stackd.netbridge import udpbatch
from stackd.netbridge.dnscache import NOT_OURS, AnswerCache, reply_tails
from stackd.netbridge.dnswire import parse_simple_query

DNS_PORT = 53
UPSTREAM_TIMEOUT = 2.0
TABLE_VERSION = 1
IP_FREEBIND = 15  # linux/in.h; not in Python's socket module


def _send_datagram(sock: pysocket.socket, data: bytes, addr: tuple[str, int]) -> None:
    try:
        # Never waits, though the listener's socket blocks (its thread sleeps in it):
        # trio's thread sends the forwarded answers.
        sock.sendto(data, pysocket.MSG_DONTWAIT, addr)
    except OSError:  # a full send buffer drops the answer, as the network could; the client retries
        pass


@dataclass(frozen=True, slots=True)
class Endpoint:
    network_key: str
    container_id: str
    ip: str
    names: tuple[str, ...]


def normalise(name: str) -> str:
    return name.rstrip(".").lower()


def upstreams_from_resolv_conf(text: str, exclude: Iterable[str] = ()) -> list[tuple[str, int]]:
    """Nameservers of a resolv.conf. Loopback ones stay: the resolver runs in the host's
    namespace, where they answer; only containers must never be handed them."""
    skip = set(exclude)
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver" and fields[1] not in skip \
                and ":" not in fields[1]:
            found.append((fields[1], DNS_PORT))
    return found


class DnsSink(Protocol):
    """What `Networks` tells DNS: an in-process `Resolver`, or the daemon's `DnsFeed`
    of the resolver process. Changes are answered once `flush` returns."""

    def add(self, network_key: str, container_id: str, ip: str,
            names: Iterable[str], links: Mapping[str, str] | None = None) -> None: ...
    def remove(self, container_id: str) -> None: ...
    def set_records(self, network_key: str, name: str, ips: Iterable[str]) -> None: ...
    def set_ready(self, container_id: str, ready: bool, *, running: bool = False) -> None: ...
    async def listen(self, network_key: str, gateway: str) -> None: ...
    async def unlisten(self, network_key: str) -> None: ...
    async def flush(self) -> None: ...


class TableError(ValueError):
    """A records table that is not one (a damaged file): its reader keeps what it had."""


class Records:
    """Who may see which name: pure bookkeeping, no sockets.

    Records enter only through the methods below (the `DnsSink` calls, `from_table`);
    each change bumps `generation`, which is what the resolver's answer cache follows.
    """

    def __init__(self) -> None:
        self.generation = 0
        self._endpoints: dict[str, dict[str, Endpoint]] = {}  # network → container → endpoint
        self._static: dict[str, dict[str, list[str]]] = {}  # network → name → ips
        self._by_ip: dict[str, str] = {}  # container address → container id
        self._networks_of: dict[str, set[str]] = {}  # container id → networks
        self._unready: set[str] = set()
        # Of the unready, those running (health starting, or unhealthy): answered for a
        # name no ready container has (`_reindex`).
        self._running_unready: set[str] = set()
        self._index: dict[str, dict[str, list[str]]] = {}  # network → name → ips
        # network → linking container → link alias → the name it stands for there
        self._links: dict[str, dict[str, dict[str, str]]] = {}
        self._turn: dict[str, int] = {}

    def _changed(self) -> None:
        self.generation += 1

    def add(self, network_key: str, container_id: str, ip: str, names: Iterable[str],
            links: Mapping[str, str] | None = None) -> None:
        """The container at `ip` answers to `names` on the network; `links` (alias →
        name): what it alone, asking on that network, gets for an alias (Docker's
        legacy links: `links: [db:database]` makes `database` db's name to it)."""
        self._put(network_key, container_id, ip, names, links)
        self._reindex(network_key)

    def _put(self, network_key: str, container_id: str, ip: str, names: Iterable[str],
             links: Mapping[str, str] | None = None) -> None:
        ep = Endpoint(network_key, container_id, ip,
                      tuple(dict.fromkeys(normalise(n) for n in names if n)))
        self._endpoints.setdefault(network_key, {})[container_id] = ep
        self._by_ip[ip] = container_id
        self._networks_of.setdefault(container_id, set()).add(network_key)
        if links:
            self._links.setdefault(network_key, {})[container_id] = {
                normalise(a): normalise(t) for a, t in links.items() if a and t}
        else:
            self._links.get(network_key, {}).pop(container_id, None)

    def remove(self, container_id: str) -> None:
        for key in self._networks_of.pop(container_id, set()):
            self._links.get(key, {}).pop(container_id, None)
            ep = self._endpoints.get(key, {}).pop(container_id, None)
            if ep is not None and self._by_ip.get(ep.ip) == container_id:
                del self._by_ip[ep.ip]
            self._reindex(key)
        self._unready.discard(container_id)
        self._running_unready.discard(container_id)

    def set_records(self, network_key: str, name: str, ips: Iterable[str]) -> None:
        """A name on a network answered with fixed addresses (empty removes it)."""
        ips = list(ips)
        if ips:
            self._static.setdefault(network_key, {})[normalise(name)] = ips
        else:
            self._static.get(network_key, {}).pop(normalise(name), None)
        self._reindex(network_key)

    def set_ready(self, container_id: str, ready: bool, *, running: bool = False) -> None:
        """An unready container is left out of answers: one that is not running (exited,
        being stopped) always; a running one (its health check starting, or failing)
        while a ready container answers to the name."""
        (self._unready.discard if ready else self._unready.add)(container_id)
        (self._running_unready.add if running and not ready
         else self._running_unready.discard)(container_id)
        for key in self._networks_of.get(container_id, ()):
            self._reindex(key)

    def forget_network(self, network_key: str) -> None:
        for cid in list(self._endpoints.get(network_key, {})):
            ep = self._endpoints[network_key].pop(cid)
            self._by_ip.pop(ep.ip, None)
            self._networks_of.get(cid, set()).discard(network_key)
        self._endpoints.pop(network_key, None)
        self._static.pop(network_key, None)
        self._links.pop(network_key, None)
        self._index.pop(network_key, None)
        self._changed()

    def _reindex(self, network_key: str) -> None:
        index: dict[str, list[str]] = {}
        waiting: dict[str, list[str]] = {}
        for cid in sorted(self._endpoints.get(network_key, {})):
            into = (index if cid not in self._unready
                    else waiting if cid in self._running_unready else None)
            if into is None:
                continue
            ep = self._endpoints[network_key][cid]
            for name in ep.names:
                into.setdefault(name, []).append(ep.ip)
        for name, ips in self._static.get(network_key, {}).items():
            index.setdefault(name, []).extend(ips)
        # Readiness steers a name to its ready containers (here or, as static records,
        # on other nodes); it never leaves a running one unanswered, as Docker's DNS
        # answers every running container: peers that must find each other before any
        # is healthy (a database cluster forming), or an nginx resolving its upstream
        # as it starts, would wait forever.
        for name, ips in waiting.items():
            index.setdefault(name, ips)
        self._index[network_key] = index
        self._changed()  # after the change: an answer made meanwhile is not kept

    def table(self, gateways: dict[str, str]) -> dict[str, Any]:
        """All of it, and each network's gateway, as JSON-able data (`from_table`)."""
        endpoints = [[ep.network_key, ep.container_id, ep.ip, list(ep.names)]
                     for key in sorted(self._endpoints)
                     for _, ep in sorted(self._endpoints[key].items())]
        return {"version": TABLE_VERSION, "networks": dict(sorted(gateways.items())),
                "endpoints": endpoints,
                "static": {k: {n: list(ips) for n, ips in sorted(v.items())}
                           for k, v in sorted(self._static.items()) if v},
                # Its own key, not a fifth column of `endpoints`: a resolver started by
                # an older stackd still reads the table (and answers no link alias).
                "links": [[key, cid, alias, name]
                          for key in sorted(self._links)
                          for cid, aliases in sorted(self._links[key].items())
                          for alias, name in sorted(aliases.items())],
                "unready": sorted(c for c in self._unready if c in self._networks_of),
                "running_unready": sorted(c for c in self._running_unready
                                          if c in self._networks_of)}

    @classmethod
    def from_table(cls, table: object, *, turns: dict[str, int] | None = None
                   ) -> tuple[Records, dict[str, str]]:
        """(records, gateway of each network) from `table`'s output; TableError if it is
        not that. `turns` carries the replicas' rotation over from the records replaced."""
        if not isinstance(table, dict) or table.get("version") != TABLE_VERSION:
            raise TableError("not a DNS records table of version "
                             f"{TABLE_VERSION}")
        try:
            gateways = {str(k): str(v) for k, v in dict(table["networks"]).items()}
            records = cls()
            # Each network indexed once at the end: a reindex per endpoint made loading
            # 500 containers' table take 80 ms.
            for key, cid, ip, names in table["endpoints"]:
                records._put(str(key), str(cid), str(ip), [str(n) for n in names])
            for key, cid, alias, name in table.get("links", ()):
                if str(cid) in records._endpoints.get(str(key), {}):
                    records._links.setdefault(str(key), {}).setdefault(str(cid), {})[
                        normalise(str(alias))] = normalise(str(name))
            for key, names in dict(table["static"]).items():
                for name, ips in dict(names).items():
                    if ips:
                        records._static.setdefault(str(key), {})[normalise(str(name))] = \
                            [str(i) for i in ips]
            records._unready.update(str(c) for c in table["unready"])
            # A table written before this key: its unready ones count as not running.
            records._running_unready.update(str(c) for c in table.get("running_unready", ()))
            for key in {*records._endpoints, *records._static}:
                records._reindex(key)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TableError(f"not a DNS records table: {exc!r}") from None
        if turns is not None:
            records._turn = turns
        return records, gateways

    def seed_unready(self, container_ids: Iterable[str], running: Iterable[str] = ()) -> None:
        """Containers known unready (`running`: and running) before their records come
        (a new daemon carries on from the table its predecessor wrote, until health
        checks say again)."""
        self._unready.update(container_ids)
        self._running_unready.update(running)
        self._changed()

    def lookup(self, source_ip: str, name: str) -> list[str] | None:
        """Addresses of `name` as the container at source_ip sees them, rotated by one
        each time (replicas take turns first); None: not ours."""
        name = normalise(name)
        ips = self.addresses(source_ip, name)
        if ips is not None and len(ips) > 1:
            k = self.take_turn(name) % len(ips)
            ips = ips[k:] + ips[:k]
        return ips

    def take_turn(self, name: str) -> int:
        """How many times `name` was answered before (its next rotation); counts this one."""
        turn = self._turn.get(name, 0)
        self._turn[name] = turn + 1
        return turn

    def addresses(self, source_ip: str, name: str) -> list[str] | None:
        """`lookup` without the rotation, for a normalised name."""
        cid = self._by_ip.get(source_ip)
        if cid is None:
            return None
        ips: list[str] = []
        known = False
        for key in sorted(self._networks_of.get(cid, ())):
            linked = self._links.get(key)
            found = self._index.get(key, {}).get(
                linked.get(cid, {}).get(name, name) if linked else name)
            if found is not None:
                known = True
                ips.extend(found)
        return ips if known else None


class Resolver:
    """The DNS service of one state root; run `serve` in a nursery (`nursery.start`)."""

    def __init__(self, upstreams: list[tuple[str, int]] | None = None, *,
                 port: int = DNS_PORT, resolv_conf: Path = Path("/etc/resolv.conf")) -> None:
        self.records = Records()
        self._answers = AnswerCache()
        self.port = port
        self._upstreams = upstreams
        self._resolv_conf = resolv_conf
        self._nursery: trio.Nursery | None = None
        self._listeners: dict[str, tuple[str, trio.CancelScope | None]] = {}

    # records, for the reconciler
    def add(self, network_key: str, container_id: str, ip: str, names: Iterable[str],
            links: Mapping[str, str] | None = None) -> None:
        self.records.add(network_key, container_id, ip, names, links)

    def remove(self, container_id: str) -> None:
        self.records.remove(container_id)

    def set_records(self, network_key: str, name: str, ips: Iterable[str]) -> None:
        self.records.set_records(network_key, name, ips)

    def set_ready(self, container_id: str, ready: bool, *, running: bool = False) -> None:
        self.records.set_ready(container_id, ready, running=running)

    async def flush(self) -> None:
        """Nothing to do: in process, answers follow every change at once."""

    async def load(self, table: object) -> list[str]:
        """Serve exactly `table` (`Records.table`): its records, and a listener on each
        of its gateways; TableError (nothing changed) if it is not one. Returns what
        could not listen, one line each: the rest is served anyway."""
        records, gateways = Records.from_table(table, turns=self.records._turn)
        self.records = records
        problems = []
        for key in [k for k in self._listeners if k not in gateways]:
            self._stop_listener(key)
        for key, gateway in gateways.items():
            try:
                await self.listen(key, gateway)
            except HostError as err:
                self._listeners.pop(key, None)  # tried again at the next load
                problems.append(f"network {key}: {err}")
        return problems

    def networks(self) -> list[str]:
        return sorted(self._listeners)

    def upstreams(self) -> list[tuple[str, int]]:
        if self._upstreams is not None:
            return self._upstreams
        try:
            text = self._resolv_conf.read_text()
        except OSError:
            return []
        return upstreams_from_resolv_conf(text, exclude=[g for g, _ in self._listeners.values()])

    # listening
    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                    ) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                for key, (gateway, scope) in list(self._listeners.items()):
                    if scope is None:
                        await self._start_listener(key, gateway)
                task_status.started()
                await trio.sleep_forever()
            finally:
                self._nursery = None
                self._listeners = {k: (g, None) for k, (g, _) in self._listeners.items()}

    async def listen(self, network_key: str, gateway: str) -> None:
        """Serve on gateway:port from now on (once `serve` runs, if it does not yet)."""
        current = self._listeners.get(network_key)
        if current is not None and current[0] == gateway and current[1] is not None:
            return
        self._stop_listener(network_key)
        self._listeners[network_key] = (gateway, None)
        if self._nursery is not None:
            await self._start_listener(network_key, gateway)

    async def unlisten(self, network_key: str) -> None:
        """Stop serving a network and forget its records (the network is gone)."""
        self._stop_listener(network_key)
        self.records.forget_network(network_key)

    def _stop_listener(self, network_key: str) -> None:
        entry = self._listeners.pop(network_key, None)
        if entry is not None and entry[1] is not None:
            entry[1].cancel()

    async def _start_listener(self, key: str, gateway: str) -> None:
        assert self._nursery is not None
        scope: trio.CancelScope = await self._nursery.start(self._listener, gateway)
        self._listeners[key] = (gateway, scope)

    async def _listener(self, gateway: str, *,
                        task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        with trio.CancelScope() as scope:
            # UDP is served from a plain socket in batches, by a thread of its own
            # (`_serve_udp`): a trio socket call per datagram costs more than
            # answering it.
            udp = pysocket.socket(pysocket.AF_INET, pysocket.SOCK_DGRAM)
            tcp = trio.socket.socket(pysocket.AF_INET, pysocket.SOCK_STREAM)
            with udp, tcp:
                tcp.setsockopt(pysocket.SOL_SOCKET, pysocket.SO_REUSEADDR, 1)
                # The gateway may be missing a moment (a bridge made again after a
                # delete, a resolver started before the daemon restores bridges): the
                # sockets are bound anyway and answer once it is back.
                for s in (udp, tcp):
                    s.setsockopt(pysocket.SOL_IP, IP_FREEBIND, 1)
                try:
                    udp.bind((gateway, self.port))
                    await tcp.bind((gateway, self.port))
                except OSError as exc:
                    hint = ("another DNS server holds the port" if exc.errno == errno.EADDRINUSE
                            else None)
                    raise HostError(f"DNS cannot listen on {gateway}:{self.port}: "
                                    f"{exc.strerror}", hint=hint) from None
                tcp.listen(64)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._serve_udp, udp, nursery)
                    nursery.start_soon(self._serve_tcp, tcp, nursery)
                    task_status.started(scope)

    # answering
    def answer(self, data: bytes, source_ip: str) -> bytes | None:
        """The reply to one query, or None when it is not ours to answer (forward it)."""
        if type(data) is not bytes:  # a bytearray cannot be a key
            data = bytes(data)
        records = self.records
        entries = self._answers.entries_for(records, records.generation)
        key = (udpbatch.address_key(source_ip), data[2:])
        cached = entries.get(key)
        if cached is None:
            question = parse_simple_query(data)
            if question is None:
                return self._answer_unusual(data, source_ip)
            name, qtype, end = question
            name = normalise(name)
            ips = records.addresses(source_ip, name)
            cached = NOT_OURS if ips is None else reply_tails(
                data, end, name, ips, qtype in (QTYPE.A, QTYPE.ANY))
            entries[key] = cached
        tails = cached.tails
        if not tails:
            return None
        if len(tails) == 1:
            return data[:2] + tails[0]
        return data[:2] + tails[records.take_turn(cached.name) % len(tails)]

    def _answer_unusual(self, data: bytes, source_ip: str) -> bytes | None:
        """A query the hand-written decoder leaves alone, through dnslib (not cached)."""
        try:
            query = DNSRecord.parse(data)
        except Exception:  # dnslib raises several kinds on garbage; garbage gets no answer
            return b""
        if not query.questions:
            return b""
        q = query.q
        ips = self.records.lookup(source_ip, str(q.qname))
        if ips is None:
            return None
        reply = query.reply()  # aa=1, ra=1
        if q.qtype in (QTYPE.A, QTYPE.ANY):
            for ip in ips:
                reply.add_answer(RR(q.qname, QTYPE.A, rdata=A(ip), ttl=0))
        return bytes(reply.pack())

    async def forward(self, data: bytes) -> bytes:
        for host, port in self.upstreams():
            with trio.move_on_after(UPSTREAM_TIMEOUT):
                sock = trio.socket.socket(pysocket.AF_INET, pysocket.SOCK_DGRAM)
                with sock:
                    try:
                        await sock.connect((host, port))
                        await sock.send(data)
                        while True:
                            reply = await sock.recv(65535)
                            if reply[:2] == data[:2]:
                                return reply
                    except OSError:
                        continue
        try:
            fail = DNSRecord.parse(data).reply()
        except Exception:
            return b""
        fail.header.rcode = RCODE.SERVFAIL
        return bytes(fail.pack())

    async def _serve_udp(self, sock: pysocket.socket, nursery: trio.Nursery) -> None:
        """UDP in a thread of its own, blocked in recvmmsg until queries come: the
        kernel wakes it straight from the sender, where trio's loop woke a task
        through epoll, a registration change and a scheduler pass for every burst
        (~0.9x dnsmasq's q/s against ~1.03x this way: docs/performance.md). Ended by
        shutting the socket down, which wakes the call; trio closes the socket only
        after the thread has returned, so it never reads a number reused."""
        token = trio.lowlevel.current_trio_token()
        stopping = False

        def forward(data: bytes, source: tuple[str, int]) -> None:
            def spawn() -> None:
                with contextlib.suppress(RuntimeError):  # the listener is closing
                    nursery.start_soon(self._forward_udp, sock, data, source)
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(spawn)

        def serve() -> None:
            batch = udpbatch.DatagramBatch()
            while True:
                n = batch.receive(sock, wait=True)
                if stopping:
                    return
                if n > 0:
                    self._answer_batch(batch, n, sock, forward)
                    batch.flush(sock)

        async def stop_when_cancelled() -> None:
            # trio waits for the thread before a cancel takes effect: this wakes it.
            nonlocal stopping
            try:
                await trio.sleep_forever()
            finally:
                stopping = True
                # An unconnected UDP socket says ENOTCONN, but is shut down and its
                # waiting reader woken all the same.
                with contextlib.suppress(OSError):
                    sock.shutdown(pysocket.SHUT_RD)

        sock.setblocking(True)
        async with trio.open_nursery() as inner:
            inner.start_soon(stop_when_cancelled)
            # A limiter of its own: the thread blocks for as long as the network is
            # served, and under trio's default one the 41st network would wait forever.
            await trio.to_thread.run_sync(serve, limiter=trio.CapacityLimiter(1))
            inner.cancel_scope.cancel()

    def _answer_batch(self, batch: udpbatch.DatagramBatch, n: int, sock: pysocket.socket,
                      forward: Callable[[bytes, tuple[str, int]], None]) -> None:
        """Queue the replies to a received batch; `forward` hands a query that is not
        ours to the upstream resolvers. On the listener's thread, beside trio's: a
        change of the records while a batch is answered is seen by the next one, and
        an answer made from the records before it is not kept past it (a new
        generation empties the cache)."""
        records = self.records
        entries = self._answers.entries_for(records, records.generation)
        # The hot path: `answer` for what the cache holds, in one call for the batch.
        for k in batch.reply_known(n, entries, records.take_turn):
            data = batch.datagram(k)
            reply = self.answer(data, batch.source_ip(k))
            if reply is None:
                forward(data, batch.source(k))
            elif reply and not batch.reply(k, reply):
                _send_datagram(sock, reply, batch.source(k))

    async def _forward_udp(self, sock: pysocket.socket, data: bytes,
                           addr: tuple[str, int]) -> None:
        reply = await self.forward(data)
        if reply:
            _send_datagram(sock, reply, addr)

    async def _serve_tcp(self, sock: trio.socket.SocketType, nursery: trio.Nursery) -> None:
        while True:
            try:
                conn, addr = await sock.accept()
            except OSError:  # out of descriptors, or the client left; keep serving
                await trio.sleep(0.1)
                continue
            nursery.start_soon(self._tcp_conn, trio.SocketStream(conn), addr[0])

    async def _tcp_conn(self, stream: trio.SocketStream, source_ip: str) -> None:
        buf = b""
        async with stream:
            with trio.move_on_after(30):
                try:
                    while True:
                        while len(buf) < 2 or len(buf) < 2 + int.from_bytes(buf[:2], "big"):
                            chunk = await stream.receive_some(65536)
                            if not chunk:
                                return
                            buf += chunk
                        size = int.from_bytes(buf[:2], "big")
                        data, buf = buf[2:2 + size], buf[2 + size:]
                        reply = self.answer(data, source_ip)
                        if reply is None:
                            reply = await self.forward(data)
                        if not reply:
                            return
                        await stream.send_all(len(reply).to_bytes(2, "big") + reply)
                except trio.BrokenResourceError:
                    return
