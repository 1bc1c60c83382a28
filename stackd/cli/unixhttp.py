"""HTTP/1.1 over the daemon's unix socket (or, for `--host tcp://`, a TLS-wrapped TCP
socket), just as much as the CLI needs.

Why not http.client: importing it (with email parsing and ssl) costs ~40 ms, and
every `stackd` command would pay it: `stackd ps` must answer about as fast as
`podman ps` (~50 ms, Python's own start-up included). One request per connection
(`Connection: close`), a response read as Content-Length, chunked, or to EOF — the
three ways hypercorn sends one.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported by request_tls only: ~10 ms a local command need not pay
    import ssl

MAX_HEADER = 64 * 1024


class ProtocolError(OSError):
    """The daemon's answer was not HTTP as we know it."""


class NoAnswer(ProtocolError):
    """The connection closed before a single byte of answer: over TLS, what a daemon
    that refused our certificate does (hypercorn cuts it without an alert)."""


class Response:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = b""
        self._eof = False
        head = self._read_until(b"\r\n\r\n", MAX_HEADER)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise ProtocolError(f"not an HTTP response: {lines[0][:80]!r}")
        self.status = int(parts[1])
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self._chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        length = self.headers.get("content-length")
        self._left = int(length) if length is not None and not self._chunked else None
        self._chunk_left = 0
        self._done = False

    # -- raw socket reading ----------------------------------------------------------

    def _fill(self) -> bool:
        if self._eof:
            return False
        data = self._sock.recv(65536)
        if not data:
            self._eof = True
            return False
        self._buf += data
        return True

    def _read_until(self, marker: bytes, limit: int) -> bytes:
        while marker not in self._buf:
            if len(self._buf) > limit:
                raise ProtocolError("the daemon's answer has no end of its headers")
            nothing_yet = not self._buf and not hasattr(self, "status")
            if not self._fill():
                if nothing_yet:
                    raise NoAnswer("the daemon closed the connection without answering")
                raise ProtocolError("the daemon closed the connection mid-answer")
        head, _, self._buf = self._buf.partition(marker)
        return head

    def _take(self, n: int) -> bytes:
        while len(self._buf) < n:
            if not self._fill():
                raise ProtocolError("the daemon closed the connection mid-answer")
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    # -- the body --------------------------------------------------------------------

    def _some(self) -> bytes:
        """The next piece of the body; b"" at its end."""
        if self._done:
            return b""
        if self._chunked:
            if self._chunk_left == 0:
                size = int(self._read_until(b"\r\n", MAX_HEADER).split(b";")[0], 16)
                if size == 0:
                    self._read_until(b"\r\n", MAX_HEADER)  # no trailers from hypercorn
                    self._done = True
                    return b""
                self._chunk_left = size
            if not self._buf and not self._fill():
                raise ProtocolError("the daemon closed the connection mid-answer")
            piece = self._buf[:self._chunk_left]
            self._buf = self._buf[len(piece):]
            self._chunk_left -= len(piece)
            if self._chunk_left == 0:
                self._take(2)  # the CRLF after the chunk
            return piece
        if self._left is not None:
            if self._left == 0:
                self._done = True
                return b""
            if not self._buf and not self._fill():
                raise ProtocolError("the daemon closed the connection mid-answer")
            piece = self._buf[:self._left]
            self._buf = self._buf[len(piece):]
            self._left -= len(piece)
            return piece
        if not self._buf and not self._fill():
            self._done = True
            return b""
        piece, self._buf = self._buf, b""
        return piece

    def read(self) -> bytes:
        parts = []
        while piece := self._some():
            parts.append(piece)
        return b"".join(parts)

    def lines(self) -> Iterator[bytes]:
        """The body line by line (NDJSON streams), each as it arrives."""
        pending = b""
        while piece := self._some():
            pending += piece
            while b"\n" in pending:
                line, _, pending = pending.partition(b"\n")
                yield line
        if pending:
            yield pending

    def close(self) -> None:
        self._sock.close()


def request(path: str, method: str, target: str, *, body: bytes | None = None,
            headers: dict[str, str] | None = None, timeout: float | None = None) -> Response:
    """Send one request on a new connection to the socket at `path`; its response.

    Connection errors (FileNotFoundError, ConnectionRefusedError, PermissionError)
    come out as they are: they tell the caller whether a daemon is there at all."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
        return _exchange(sock, method, target, body, headers)
    except BaseException:
        sock.close()
        raise


def request_tls(address: tuple[str, int], context: ssl.SSLContext, method: str,
                target: str, *, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float | None = None
                ) -> Response:
    """The same over TCP and TLS (`context` has the CA to trust and the client's
    certificate). Errors come out as they are: OSError for the connection,
    ssl.SSLCertVerificationError for the daemon's certificate, ssl.SSLError for the
    daemon refusing ours (with TLS 1.3 that arrives on the first read)."""
    sock = socket.create_connection(address, timeout=timeout)
    try:
        sock.settimeout(timeout)
        tls = context.wrap_socket(sock, server_hostname=address[0])
    except BaseException:
        sock.close()
        raise
    try:
        return _exchange(tls, method, target, body, headers)
    except BaseException:
        tls.close()
        raise


def _exchange(sock: socket.socket, method: str, target: str, body: bytes | None,
              headers: dict[str, str] | None) -> Response:
    head = [f"{method} {target} HTTP/1.1", "Host: stackd", "Connection: close"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body is not None:
        head.append(f"Content-Length: {len(body)}")
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (body or b""))
    return Response(sock)
