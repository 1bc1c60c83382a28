"""The CLI's side of the daemon's API: HTTP over the unix socket, and starting the daemon.

Start on demand: when the socket does not answer, the CLI starts `stackd daemon`
detached (its own session, output to the daemon log), waits until it answers, and
carries on, so a fresh machine needs no setup step. Two CLIs doing this at once start
two daemons of which the pid-file lock lets one live; both CLIs then talk to it.
Set STACKD_NO_AUTOSTART=1 to get an error instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from stackd.daemon import wire
from stackd.daemon.paths import log_path, pid_path, socket_path
from stackd.errors import StackdError, UnavailableError
from stackd.roots import Roots

START_TIMEOUT = 20.0  # seconds for a started daemon to answer


class Client:
    def __init__(self, roots: Roots | None = None, *, autostart: bool | None = None) -> None:
        self.roots = roots or Roots.from_env()
        self.socket = socket_path(self.roots)
        if autostart is None:
            autostart = os.environ.get("STACKD_NO_AUTOSTART", "") in ("", "0")
        self.autostart = autostart
        self._http = httpx.Client(transport=httpx.HTTPTransport(uds=str(self.socket)),
                                  base_url="http://stackd",
                                  timeout=httpx.Timeout(60.0, connect=5.0))
        self._ready = False

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reaching the daemon ---------------------------------------------------------

    def alive(self) -> bool:
        """Does a daemon answer on the socket right now?"""
        try:
            return self._http.get("/v1/ping", timeout=2.0).status_code == 200
        except httpx.TransportError as exc:
            _refuse_permission(exc, self.socket)
            return False

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
                params: dict[str, Any] | None = None) -> Any:
        self.ensure()
        # A kept-alive connection the server has just closed fails on reuse; a read is
        # safe to send again, a change is not.
        attempts = 2 if method in ("GET", "HEAD") else 1
        for attempt in range(attempts):
            try:
                r = self._http.request(method, path, json=json_body, params=_params(params))
                break
            except httpx.TransportError as exc:
                if attempt + 1 == attempts:
                    raise _unavailable(exc, self.socket) from None
        return _decode(r)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None, **params: Any) -> Any:
        return self.request("POST", path, json_body=body, params=params)

    def stream(self, method: str, path: str, *, json_body: Any = None,
               params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """NDJSON objects as they arrive; an error line is raised as its StackdError."""
        self.ensure()
        try:
            with self._http.stream(method, path, json=json_body, params=_params(params),
                                   timeout=httpx.Timeout(None, connect=5.0)) as r:
                if r.status_code >= 400:
                    r.read()
                    _decode(r)
                for line in r.iter_lines():
                    if not line.strip():
                        continue
                    item = json.loads(line)
                    if isinstance(item, dict) and "error" in item:
                        raise wire.error_from_body(item, 200)
                    yield item
        except httpx.TransportError as exc:
            raise _unavailable(exc, self.socket) from None


def _params(params: dict[str, Any] | None) -> dict[str, Any] | None:
    if not params:
        return None
    out: dict[str, Any] = {}
    for k, v in params.items():
        if v is None:
            continue
        out[k] = ("true" if v else "false") if isinstance(v, bool) else v
    return out


def _decode(r: httpx.Response) -> Any:
    try:
        body = r.json()
    except ValueError:
        body = r.text
    if r.status_code >= 400:
        raise wire.error_from_body(body, r.status_code)
    return body


def _refuse_permission(exc: Exception, sock: Path) -> None:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, PermissionError):
            raise UnavailableError(
                f"permission denied on {sock}: the daemon's socket is root's only",
                hint="run stackd as root (sudo stackd …)") from None
        cause = cause.__cause__ or cause.__context__


def _unavailable(exc: Exception, sock: Path) -> StackdError:
    _refuse_permission(exc, sock)
    return UnavailableError(f"lost the stackd daemon on {sock}: {exc}",
                            hint="`stackd daemon status` says whether it runs")


def start_daemon(roots: Roots) -> subprocess.Popen[bytes]:
    """Start `stackd daemon` detached from this process (new session, no tty)."""
    roots.ensure()
    log = log_path(roots)
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, STACKD_ROOT=str(roots.state), STACKD_RUN=str(roots.run))
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "stackd", "daemon"], env=env, cwd="/",
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
            close_fds=True)


def daemon_pid(roots: Roots) -> int | None:
    from stackd.daemon.pidfile import locked, read_pid

    path = pid_path(roots)
    return read_pid(path) if locked(path) else None
