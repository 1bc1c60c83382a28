"""The daemon's side of the resolver process: it keeps the records and feeds them.

`DnsFeed` takes the same calls as an in-process `Resolver` (`DnsSink`), keeping the
records in memory; `flush` writes them all to the records file (atomically, 0600) and
asks the resolver process to reload, starting it first if there is a network to serve
and none answers. Concurrent flushes share one write. A table with no network makes
the process exit, so the last `down` leaves none behind.

Readiness (a failing health check takes a replica out of answers) is known only to the
daemon's supervisor, so a new daemon starts from the unready set its predecessor
wrote, until the supervisor says again; the rest comes from the store (`restore`).
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import trio

from stackd import detached
from stackd.errors import StackdError, UnavailableError
from stackd.netbridge.dns import Records, TableError
from stackd.netbridge.dnsfiles import DnsPaths, read_table, write_table
from stackd.roots import Roots

log = logging.getLogger("stackd.netbridge.dns")
MODULE = "stackd.netbridge.dnsd"
REPLY_TIMEOUT = 10.0
KEEP_INTERVAL = 1.0
EXIT_WAIT = 5.0


class DnsFeed:
    def __init__(self, roots: Roots, *, start: bool = True) -> None:
        """start: may start the resolver process when none runs (False: only tell a
        running one, as a command working on the store with no daemon does)."""
        self.roots = roots
        self.paths = DnsPaths(roots.run)
        self.records = Records()
        self.gateways: dict[str, str] = {}
        self.start = start
        self.problem: str | None = None  # why the last flush did not reach a resolver
        # The networks the state store holds now, when set (the daemon's feed): one
        # removed by another process — `network prune` beside the daemon — is dropped
        # at the next flush, not served on (and its resolver kept alive) for ever.
        self.networks_now: Callable[[], Iterable[str]] | None = None
        self._version = 0
        self._flushed = -1
        self._lock = trio.Lock()
        try:
            before = read_table(self.paths.records)
        except (TableError, OSError):  # damaged or unreadable: health checks say again
            before = None
        unready = before.get("unready") if before else None
        running = before.get("running_unready") if before else None
        if isinstance(unready, list):
            self.records.seed_unready(map(str, unready),
                                      map(str, running) if isinstance(running, list) else ())

    # the sink: records, as for an in-process Resolver
    def _changed(self) -> None:
        self._version += 1

    def add(self, network_key: str, container_id: str, ip: str, names: Iterable[str],
            links: Mapping[str, str] | None = None) -> None:
        self.records.add(network_key, container_id, ip, names, links)
        self._changed()

    def remove(self, container_id: str) -> None:
        self.records.remove(container_id)
        self._changed()

    def set_records(self, network_key: str, name: str, ips: Iterable[str]) -> None:
        self.records.set_records(network_key, name, ips)
        self._changed()

    def set_ready(self, container_id: str, ready: bool, *, running: bool = False) -> None:
        self.records.set_ready(container_id, ready, running=running)
        self._changed()

    async def listen(self, network_key: str, gateway: str) -> None:
        if self.gateways.get(network_key) != gateway:
            self.gateways[network_key] = gateway
            self._changed()

    async def unlisten(self, network_key: str) -> None:
        self.gateways.pop(network_key, None)
        self.records.forget_network(network_key)
        self._changed()

    async def flush(self) -> None:
        """Return once the resolver process answers with every change made before the
        call (or it could not: then `problem` says why, and `keep` tries again)."""
        want = self._version
        async with self._lock:
            if self._flushed >= want:
                return  # a flush that ran while we waited carried our change
            version = self._version
            if self.networks_now is not None:
                held = set(self.networks_now())
                for key in [k for k in self.gateways if k not in held]:
                    self.gateways.pop(key)
                    self.records.forget_network(key)
            table = self.records.table(self.gateways)
            try:
                await trio.to_thread.run_sync(write_table, self.paths.records, table)
                problems = await self._reload(bool(table["networks"]))
            except (OSError, StackdError) as err:
                self.problem = f"DNS records not served: {err}"
                log.warning("%s", self.problem)
                return
            # Served, but some gateway could not be listened on (e.g. another DNS
            # server holds its port 53): said, and tried again by `keep`.
            self.problem = f"DNS: {'; '.join(problems)}" if problems else None
            self._flushed = version

    async def keep(self, report: Callable[[str], None]) -> None:
        """For as long as the daemon runs: a resolver process killed, or a flush that
        failed, is made good within a second; each failure is reported once."""
        said = None
        while True:
            await trio.sleep(KEEP_INTERVAL)
            if self.problem is not None and self.problem != said:
                report(self.problem)
            said = self.problem
            try:
                lost = bool(self.gateways) and await self._ask({"op": "ping"}) is None
            except (OSError, StackdError) as err:  # busy or wedged: a reload says which
                self.problem = f"DNS resolver: {err}"
                lost = True
            if lost or self.problem is not None or self._flushed < self._version:
                self._flushed = -1
                await self.flush()

    async def _reload(self, has_networks: bool) -> list[str]:
        """Have the resolver serve the file (starting it if need be); what it could
        not listen on."""
        reply = await self._ask({"op": "reload"})
        if reply is not None and reply.get("exiting"):
            # No network left (ours, or a table written just before ours): it goes.
            # Wait for it, so that a `down` that returns has left no process behind,
            # and so that a new one can take the lock at once if ours has networks.
            with trio.move_on_after(EXIT_WAIT):
                while detached.held(self.paths.lock):
                    await trio.sleep(0.005)
            if has_networks:
                reply = None
        if reply is None and has_networks and self.start:
            await detached.spawn(MODULE, self.roots, self.paths.log, what="DNS resolver")
            # It read the file as it started; unless it found another one starting,
            # which this makes read it too.
            reply = await self._ask({"op": "reload"})
            if reply is None or reply.get("exiting"):
                raise UnavailableError(f"the DNS resolver of {self.roots.run} started but "
                                       "does not serve", hint=f"see {self.paths.log}")
        if reply is not None and not reply.get("ok"):
            raise UnavailableError(f"the DNS resolver refused its records: {reply.get('error')}",
                                   hint=f"see {self.paths.log}")
        problems = reply.get("problems") if reply is not None else None
        return [str(p) for p in problems] if isinstance(problems, list) else []

    async def _ask(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """The resolver's reply; None if none runs (or it went as we asked)."""
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with sock:
            try:
                await sock.connect(str(self.paths.socket))
                await sock.send(json.dumps(message).encode() + b"\n")
                buf = b""
                with trio.fail_after(REPLY_TIMEOUT):
                    while not buf.endswith(b"\n"):
                        chunk = await sock.recv(65536)
                        if not chunk:
                            return None
                        buf += chunk
            except (FileNotFoundError, ConnectionRefusedError, ConnectionResetError,
                    BrokenPipeError):
                return None
            except trio.TooSlowError:
                raise UnavailableError(f"the DNS resolver of {self.roots.run} does not answer",
                                  hint=f"see {self.paths.log}") from None
        try:
            reply: dict[str, Any] = json.loads(buf)
        except ValueError:
            return None
        return reply


def resolver_pid(roots: Roots) -> int | None:
    """The pid of the root's resolver process, if one runs."""
    paths = DnsPaths(roots.run)
    if not detached.held(paths.lock):
        return None
    try:
        return int(paths.pidfile.read_text().strip() or 0) or None
    except (OSError, ValueError):
        return None
