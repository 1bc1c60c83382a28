"""The resolver process: one per state root, serving the root's DNS whether or not a
daemon runs (as podman's aardvark-dns does for netavark).

`python -m stackd.netbridge.dnsd --state S --run R --root-id ID`, started by the
daemon's `DnsFeed` (or any `Networks` with one) through `stackd.detached`: it leads
its own session and holds `dns.lock` under the run dir for life, so a daemon that is
SIGKILLed or stopped neither takes it down nor reaps it, and a new daemon finds the
same one (its socket answers) instead of starting a second.

It serves what the records file says (`dns.records.json`, written by the daemon) with
the same `Resolver` the daemon used to run. On `{"op": "reload"}` over `dns.sock` it
reads the file again and answers once it serves the new table; a table with no
network left makes it exit (the last stack's `down`). A damaged file is refused and
the table before it kept. It forks once, in `detach`, before trio starts; it never
forks after, so it may use threads.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from stackd import detached
from stackd.netbridge.dns import Resolver, TableError
from stackd.netbridge.dnsfiles import DnsPaths, read_table
from stackd.roots import Roots

REQUEST_TIMEOUT = 3.0  # a client that connects must say what it wants this soon
MAX_REQUEST = 4096


class Daemon:
    def __init__(self, paths: DnsPaths) -> None:
        self.paths = paths
        self.resolver = Resolver()
        self.listener: trio.socket.SocketType | None = None
        # One reload at a time: two interleaved could serve the older file last.
        self._reloading = trio.Lock()

    async def reload(self) -> dict[str, Any]:
        """Serve the records file as it is now; the reply to a `reload`."""
        async with self._reloading:
            if self.listener is None:  # going: the next table is a new resolver's
                return {"ok": True, "pid": os.getpid(), "networks": [], "problems": [],
                        "exiting": True}
            return await self._reload()

    async def _reload(self) -> dict[str, Any]:
        try:
            table = await trio.to_thread.run_sync(read_table, self.paths.records)
            problems = await self.resolver.load(table if table is not None else _EMPTY)
        except TableError as err:
            print(f"dns: keeping the records I have: {err}", file=sys.stderr, flush=True)
            return {"ok": False, "error": str(err), "pid": os.getpid()}
        for p in problems:
            print(f"dns: {p}", file=sys.stderr, flush=True)
        if not self.resolver.networks():
            self.stop_listening()  # before any checkpoint: see stop_listening
        return {"ok": True, "pid": os.getpid(), "networks": self.resolver.networks(),
                "problems": problems, "exiting": self.listener is None}

    def listen(self) -> None:
        try:
            self.paths.socket.unlink()
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(self.paths.socket))
        os.chmod(self.paths.socket, 0o600)
        sock.listen(64)
        self.listener = trio.socket.from_stdlib_socket(sock)

    def stop_listening(self) -> None:
        """Go: unlink first, so a feed writing a new table now finds no socket and
        starts a new resolver (which waits for our lock) rather than reaching us after
        we decided; one already queued on the socket sees it close and retries so too."""
        for p in (self.paths.socket, self.paths.pidfile):
            try:
                p.unlink()
            except FileNotFoundError:
                pass
        if self.listener is not None:
            self.listener.close()
            self.listener = None

    async def serve_control(self, done: trio.CancelScope) -> None:
        assert self.listener is not None
        async with trio.open_nursery() as nursery:
            while self.listener is not None:
                try:
                    conn, _ = await self.listener.accept()
                except (OSError, trio.ClosedResourceError):
                    if self.listener is None:  # closed by a reload that emptied the table
                        break
                    await trio.sleep(0.05)  # out of descriptors: the client waits
                    continue
                nursery.start_soon(self.on_client, trio.SocketStream(conn))
        done.cancel()

    async def on_client(self, stream: trio.SocketStream) -> None:
        async with stream:
            buf = b""
            with trio.move_on_after(REQUEST_TIMEOUT):
                while b"\n" not in buf and len(buf) < MAX_REQUEST:
                    chunk = await stream.receive_some(MAX_REQUEST)
                    if not chunk:
                        return
                    buf += chunk
            try:
                request = json.loads(buf.partition(b"\n")[0])
                op = request.get("op") if isinstance(request, dict) else None
            except ValueError:
                op = None
            if op == "reload":
                reply = await self.reload()
            elif op == "ping":
                reply = {"ok": True, "pid": os.getpid(), "networks": self.resolver.networks()}
            else:
                reply = {"ok": False, "error": "unknown request; use reload or ping"}
            try:
                await stream.send_all(json.dumps(reply).encode() + b"\n")
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass


_EMPTY: dict[str, Any] = {"version": 1, "networks": {}, "endpoints": [], "static": {},
                          "unready": []}


async def run(paths: DnsPaths, ready: Callable[[], None]) -> None:
    d = Daemon(paths)
    async with trio.open_nursery() as nursery:
        await nursery.start(d.resolver.serve)
        d.listen()
        first = await d.reload()
        if d.listener is not None:
            detached.write_pidfile(paths.pidfile)  # once it serves: tools may rely on it
        ready()
        if d.listener is None:
            print(f"dns: nothing to serve ({first.get('error', 'no network')}); exiting",
                  file=sys.stderr, flush=True)
            nursery.cancel_scope.cancel()
            return
        await d.serve_control(nursery.cancel_scope)


def _answers(path: Path) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(2)
        s.connect(str(path))
        s.sendall(b'{"op": "ping"}\n')
        return b'"ok": true' in s.recv(4096)
    except OSError:
        return False
    finally:
        s.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stackd-dns")
    parser.add_argument("--state", required=True)
    parser.add_argument("--run", required=True)
    parser.add_argument("--root-id", required=True)  # shown in ps, used by tools/leaks
    args = parser.parse_args(argv)
    roots = Roots(state=Path(args.state), run=Path(args.run)).ensure()
    paths = DnsPaths(roots.run)
    ready = detached.detach(paths.lock, lambda: _answers(paths.socket), name="DNS resolver")
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a session leader with no terminal
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    trio.run(run, paths, ready)
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
