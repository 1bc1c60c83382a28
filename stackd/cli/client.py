"""The CLI's side of the daemon's API: HTTP over the unix socket, and starting the daemon.

Start on demand: when the socket does not answer, the CLI starts `stackd daemon`
detached (its own session, output to the daemon log), waits until it answers, and
carries on, so a fresh machine needs no setup step. Two CLIs doing this at once start
two daemons of which the pid-file lock lets one live; both CLIs then talk to it.
Set STACKD_NO_AUTOSTART=1 to get an error instead.

With `--host tcp://HOST:PORT` (STACKD_HOST) the same requests go to a cluster
member's TLS listener instead (stackd/cli/remote.py); nothing is started then.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stackd.cli import unixhttp
from stackd.daemon import wire
from stackd.daemon.paths import log_path, pid_path, socket_path
from stackd.errors import StackdError, UnavailableError, reason
from stackd.filemodes import open_private, private_dir
from stackd.roots import Roots

if TYPE_CHECKING:  # imported where used: each costs every command start-up time
    import ssl
    import subprocess

    from stackd.cli import remote

START_TIMEOUT = 20.0  # seconds for a started daemon to answer
REQUEST_TIMEOUT = 60.0

# Everything that means "the socket did not carry the request" (see unixhttp.py for
# why not http.client or httpx: their import time, paid by every `stackd` command).
TRANSPORT_ERRORS = (OSError,)
ACTOR_HEADER = "X-Stackd-Actor"
# ...and what of that means "no daemon listens here": start one (start on demand).
NO_DAEMON = (FileNotFoundError, ConnectionRefusedError)


class Client:
    def __init__(self, roots: Roots | None = None, *, autostart: bool | None = None) -> None:
        self.roots = roots or Roots.from_env()
        # --host (STACKD_HOST): cli/remote.py, imported only when one is given.
        host = os.environ.get("STACKD_HOST", "") if roots is None else ""
        where: remote.Remote | str | None = None
        if host:
            from stackd.cli import remote

            where = remote.parse(host)
        self.remote: remote.Remote | None = (
            None if where is None or isinstance(where, str) else where)
        self.socket = Path(where) if isinstance(where, str) else socket_path(self.roots)
        if autostart is None:
            autostart = os.environ.get("STACKD_NO_AUTOSTART", "") in ("", "0")
        # Only this host's own daemon is started on demand.
        self.autostart = autostart and where is None
        self._ready = False
        self._tls: ssl.SSLContext | None = None

    def close(self) -> None:
        pass  # one connection per request: nothing held between them

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reaching the daemon ---------------------------------------------------------

    def _open(self, method: str, path: str, *, json_body: Any = None,
              params: dict[str, Any] | None = None, timeout: float | None = REQUEST_TIMEOUT
              ) -> unixhttp.Response:
        from urllib.parse import quote, urlencode

        query = wire.query_params(params)
        path = quote(path, safe="/")
        url = f"{path}?{urlencode(query, doseq=True)}" if query else path
        # Who asks: the daemon names it on the `action` event of a state-changing request.
        headers = {"Accept": "application/json, application/x-ndjson", ACTOR_HEADER: "cli"}
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        if self.remote is not None:
            from stackd.cli import remote

            if self._tls is None:
                self._tls = remote.tls_context(self.remote)
            return unixhttp.request_tls(self.remote.address, self._tls, method, url,
                                        body=body, headers=headers, timeout=timeout)
        return unixhttp.request(str(self.socket), method, url, body=body, headers=headers,
                                timeout=timeout)

    def _send(self, method: str, path: str, *, json_body: Any = None,
              params: dict[str, Any] | None = None, timeout: float | None = REQUEST_TIMEOUT
              ) -> unixhttp.Response:
        """The request, starting the daemon first if none listens. No ping before: a
        round trip saved on every command."""
        if not self._ready and self.remote is None:
            try:
                r = self._open(method, path, json_body=json_body, params=params,
                               timeout=timeout)
                self._ready = True
                return r
            except NO_DAEMON:
                self.ensure()
        return self._open(method, path, json_body=json_body, params=params, timeout=timeout)

    def alive(self) -> bool:
        """Does a daemon answer on the socket right now?"""
        if self.remote is not None:
            return self._remote_alive()
        try:
            r = self._open("GET", "/v1/ping", timeout=2.0)
            with closing(r):
                r.read()
                return r.status == 200
        except PermissionError:
            raise UnavailableError(
                f"permission denied on {self.socket}: the daemon's socket is root's only",
                hint="run stackd as root (sudo stackd …)") from None
        except TRANSPORT_ERRORS:
            return False

    def _remote_alive(self) -> bool:
        """A remote daemon answers, or the error saying why not (a certificate refused
        is no daemon that is merely not there yet)."""
        assert self.remote is not None
        try:
            r = self._open("GET", "/v1/ping", timeout=10.0)
            with closing(r):
                r.read()
                return r.status == 200
        except TRANSPORT_ERRORS as exc:
            from stackd.cli import remote

            raise remote.unavailable(exc, self.remote) from None

    def ensure(self) -> None:
        if self._ready:
            return
        if not self.alive():
            if not self.autostart:
                raise UnavailableError(
                    f"no stackd daemon answers on {self.socket}",
                    hint="start one with `stackd daemon`, or unset STACKD_NO_AUTOSTART")
            self._wait_alive(start_daemon(self.roots))
        self._ready = True

    def _wait_alive(self, proc: subprocess.Popen[bytes]) -> None:
        from stackd.daemon.pidfile import locked

        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.alive():
                if proc.poll() is None and daemon_pid(self.roots) not in (None, proc.pid):
                    # Another client's daemon won the race to start. Ours would find
                    # the lock taken and go — unless, started late, it found that one
                    # already stopped, and came up unasked (a test's teardown saw it).
                    proc.terminate()
                return
            # Ours died and no other daemon holds the lock (one that won the race to
            # start is fine): waiting longer would not help.
            if proc.poll() is not None and not locked(pid_path(self.roots)):
                raise UnavailableError(
                    f"the stackd daemon exited with code {proc.returncode} while starting",
                    hint=f"its log is {log_path(self.roots)}; `stackd daemon` runs it in "
                    "the foreground")
            time.sleep(0.02)
        raise UnavailableError(
            f"started a stackd daemon but it did not answer on {self.socket} within "
            f"{START_TIMEOUT:.0f}s", hint=f"its log is {log_path(self.roots)}")

    # -- requests --------------------------------------------------------------------

    def request(self, method: str, path: str, *, json_body: Any = None,
                params: dict[str, Any] | None = None,
                timeout: float | None = REQUEST_TIMEOUT) -> Any:
        try:
            r = self._send(method, path, json_body=json_body, params=params,
                           timeout=timeout)
            with closing(r):
                data = r.read()
        except TRANSPORT_ERRORS as exc:
            raise self._unavailable(exc) from None
        return wire.decode_response(r.status, data)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None, **params: Any) -> Any:
        return self.request("POST", path, json_body=body, params=params)

    def stream(self, method: str, path: str, *, json_body: Any = None,
               params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """NDJSON objects as they arrive; an error line is raised as its StackdError."""
        try:
            r = self._send(method, path, json_body=json_body, params=params, timeout=None)
        except TRANSPORT_ERRORS as exc:
            raise self._unavailable(exc) from None
        with closing(r):
            if r.status >= 400:
                wire.decode_response(r.status, r.read())
            lines = r.lines()
            while True:
                try:
                    line = next(lines, None)
                except TRANSPORT_ERRORS as exc:
                    raise self._unavailable(exc) from None
                if line is None:
                    break
                if not line.strip():
                    continue
                item = json.loads(line)
                if isinstance(item, dict) and "error" in item:
                    raise wire.error_from_body(item, 200)
                yield item

    def _unavailable(self, exc: BaseException) -> StackdError:
        if self.remote is not None:
            from stackd.cli import remote

            return remote.unavailable(exc, self.remote)
        return _unavailable(exc, self.socket)


def _unavailable(exc: BaseException, sock: Path) -> StackdError:
    if isinstance(exc, PermissionError):
        return UnavailableError(
            f"permission denied on {sock}: the daemon's socket is root's only",
            hint="run stackd as root (sudo stackd …)")
    return UnavailableError(f"lost the stackd daemon on {sock}: {reason(exc)}",
                            hint="`stackd daemon status` says whether it runs")


def start_daemon(roots: Roots) -> subprocess.Popen[bytes]:
    """Start `stackd daemon` detached from this process (new session, no tty)."""
    import subprocess

    roots.ensure()
    log = log_path(roots)
    private_dir(log.parent)
    env = dict(os.environ, STACKD_ROOT=str(roots.state), STACKD_RUN=str(roots.run))
    with os.fdopen(open_private(log, os.O_WRONLY | os.O_APPEND), "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "stackd", "daemon"], env=env, cwd="/",
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
            close_fds=True)


def daemon_pid(roots: Roots) -> int | None:
    from stackd.daemon.pidfile import locked, read_pid

    path = pid_path(roots)
    return read_pid(path) if locked(path) else None
