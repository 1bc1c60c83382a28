"""The webhook listener: an opt-in TCP port (`stackd daemon --webhook-listen
HOST:PORT`) where a git host announces a push. `POST /hooks/NAME` with GitHub's
X-Hub-Signature-256, GitLab's X-Gitlab-Token or X-Stackd-Secret (the shared secret
of `--webhook-secret-file`) wakes source NAME's sync at once; anything not
authenticated is refused 401 and counted. A deliberately small HTTP/1.1 reader:
one request per connection, bounded head and body, a deadline for the whole read.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from stackd.errors import UsageError
from stackd.gitops.names import NAME
from stackd.gitops.signatures import check

if TYPE_CHECKING:
    from stackd.gitops.service import GitOps

log = logging.getLogger("stackd.gitops.webhook")
MAX_HEAD = 16 * 1024
MAX_BODY = 4 * 1024 * 1024
READ_DEADLINE = 10.0


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise UsageError(f"--webhook-listen {text!r} is not HOST:PORT",
                         hint="e.g. 127.0.0.1:9876")
    return host.strip("[]") or "0.0.0.0", int(port)


def read_secret(path: str | None) -> bytes:
    if not path:
        raise UsageError("the webhook listener needs a shared secret",
                         hint="give --webhook-secret-file FILE (or STACKD_WEBHOOK_SECRET_FILE)")
    try:
        return Path(path).read_bytes().strip()
    except OSError as exc:
        raise UsageError(f"cannot read the webhook secret file {path}: {exc.strerror}",
                         hint="give a readable file") from None


async def serve_webhook(gitops: GitOps, listen: str, secret_file: str | None, *,
                        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
                        ) -> None:
    host, port = parse_listen(listen)
    secret = await trio.to_thread.run_sync(read_secret, secret_file)
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()[1]
    log.info("webhook listening", extra={"host": host, "port": bound})
    task_status.started(bound)

    async def handle(stream: trio.SocketStream) -> None:
        try:
            with trio.move_on_after(READ_DEADLINE):
                status, body = await _answer(gitops, secret, stream)
                await stream.send_all(_response(status, body))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            await stream.aclose()

    await trio.serve_listeners(handle, listeners)


async def _read_request(stream: trio.SocketStream) -> tuple[str, str, dict[str, str], bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = await stream.receive_some(4096)
        if not chunk:
            raise ValueError("connection closed before the request's head ended")
        buf += chunk
        if len(buf) > MAX_HEAD and b"\r\n\r\n" not in buf[:MAX_HEAD + 4]:
            raise ValueError("request head too large")
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = ([*lines[0].split(" "), "", "", ""])[:3]
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    if length < 0 or length > MAX_BODY:
        raise ValueError("request body too large")
    while len(body) < length:
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise ValueError("connection closed before the body ended")
        body += chunk
    return method, path, headers, body[:length]


async def _answer(gitops: GitOps, secret: bytes, stream: trio.SocketStream
                  ) -> tuple[int, str]:
    try:
        method, path, headers, body = await _read_request(stream)
    except ValueError as exc:
        return 400, str(exc)
    parts = path.split("?")[0].strip("/").split("/")
    if method != "POST" or len(parts) != 2 or parts[0] != "hooks" or not NAME.match(parts[1]):
        return 404, "POST /hooks/SOURCE"
    if check(secret, headers, body) is None:
        gitops.webhook_refused.inc()
        gitops.note_refused(parts[1])
        return 401, "signature or token refused"
    if not gitops.wake(parts[1]):
        return 404, f"no gitops source named {parts[1]}"
    return 202, f"sync of {parts[1]} started"


def _response(status: int, text: str) -> bytes:
    reason = {202: "Accepted", 400: "Bad Request", 401: "Unauthorized",
              404: "Not Found"}.get(status, "")
    body = (text + "\n").encode()
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
