"""`stackd ui`: serve the console on a TCP address (hypercorn, trio), in front of the
daemon's unix socket.

Why a process of its own rather than routes in the daemon: the daemon's socket is
root's only and carries no authentication (the file mode is its access control); a
TCP listener with tokens, sessions, CSRF checks and TLS is a different trust
boundary, and keeping it out of the daemon keeps the daemon's one loop free of page
rendering, Graphviz runs and browsers' long-lived streams. The console is a client
like the CLI: it can crash or be stopped without touching a container.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import trio

from stackd.errors import UsageError
from stackd.roots import Roots
from stackd.ui import auth

DEFAULT_LISTEN = "127.0.0.1:8470"


@dataclass(frozen=True)
class Listen:
    host: str
    port: int

    @property
    def netloc(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen(text: str) -> Listen:
    """HOST:PORT, [IPv6]:PORT, or :PORT (loopback)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--listen {text!r}: expected HOST:PORT, e.g. {DEFAULT_LISTEN}")
    host = host.strip("[]") or "127.0.0.1"
    return Listen(host, int(port))


def check_tls(listen: Listen, cert: Path | None, key: Path | None) -> bool:
    """Whether to serve TLS. Refuses a non-loopback address without it: the token and
    the session cookie would cross the network in clear."""
    if (cert is None) != (key is None):
        raise UsageError("--tls-cert and --tls-key go together",
                         hint="give both files, or neither for a loopback address")
    if cert is None and not auth.is_loopback(listen.host):
        raise UsageError(
            f"refusing to serve the console on {listen.netloc} without TLS: its token and "
            "session cookie would cross the network in clear",
            hint="pass --tls-cert FILE and --tls-key FILE, or listen on a loopback "
                 f"address ({DEFAULT_LISTEN}) and reach it through an SSH tunnel")
    for path in (cert, key):
        if path is not None and not path.is_file():
            raise UsageError(f"no such file: {path}")
    return cert is not None


async def serve(roots: Roots, listen: Listen, tokens: auth.Tokens, *,
                cert: Path | None, key: Path | None, allow_hosts: tuple[str, ...] = (),
                on_ready: object = None,
                task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    from hypercorn.config import Config
    from hypercorn.trio import serve as hypercorn_serve

    from stackd.daemon.paths import socket_path
    from stackd.ui.app import make_app
    from stackd.ui.daemonapi import DaemonAPI

    secure = cert is not None
    api = DaemonAPI(socket_path(roots))
    app = make_app(api, tokens=tokens, sessions=auth.Sessions(),
                   hosts=auth.allowed_hosts(listen.host, listen.port, allow_hosts),
                   secure=secure)
    config = Config()
    config.bind = [listen.netloc]
    config.accesslog = None
    # Warnings and errors to stderr (stdout is the URL's), tracebacks included.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config.errorlog = logging.getLogger("stackd.ui")
    config.loglevel = "WARNING"
    # Browsers keep a stream per open page; hypercorn must not wait on them to stop.
    config.graceful_timeout = 1.0
    if secure:
        config.certfile, config.keyfile = str(cert), str(key)
    try:
        await hypercorn_serve(app, config, task_status=task_status)  # type: ignore[arg-type]
    finally:
        with trio.CancelScope(shield=True):
            await api.aclose()


def url(listen: Listen, token: str | None, *, secure: bool) -> str:
    base = f"{'https' if secure else 'http'}://{listen.netloc}/"
    return f"{base}?token={token}" if token else base


def say(text: str) -> None:
    print(text, flush=True)
    sys.stdout.flush()
