"""The CLI's own HTTP/1.1 client reads every framing hypercorn uses, from a real socket."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from stackd.cli import unixhttp


def serve_once(path: Path, answer: bytes, seen: list[bytes]) -> threading.Thread:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def run() -> None:
        conn, _ = server.accept()
        with conn, server:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            seen.append(data)
            # Dribble the answer out in small pieces: framing must not depend on reads.
            for i in range(0, len(answer), 7):
                conn.sendall(answer[i:i + 7])

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("answer, body", [
    (b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\nhello world", b"hello world"),
    (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
     b"6\r\n{\"a\":1\r\n4\r\n}\n{}\r\n1\r\n\n\r\n0\r\n\r\n", b'{"a":1}\n{}\n'),
    (b"HTTP/1.1 404 Not Found\r\nconnection: close\r\n\r\nno such thing", b"no such thing"),
])
def test_bodies_by_length_chunks_and_eof(tmp_path: Path, answer: bytes, body: bytes):
    seen: list[bytes] = []
    t = serve_once(tmp_path / "s.sock", answer, seen)
    r = unixhttp.request(str(tmp_path / "s.sock"), "POST", "/v1/x?y=1", body=b"{}",
                         headers={"Content-Type": "application/json"}, timeout=5)
    assert r.read() == body
    r.close()
    t.join(5)
    assert seen[0].startswith(b"POST /v1/x?y=1 HTTP/1.1\r\n")
    assert b"Content-Length: 2\r\n" in seen[0]
    assert r.status == int(answer.split()[1])


def test_ndjson_lines_arrive_across_chunk_boundaries(tmp_path: Path):
    lines = [b'{"n":%d}' % i for i in range(50)]
    payload = b"\n".join(lines) + b"\n"
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(payload[i:i + 13]), payload[i:i + 13])
                       for i in range(0, len(payload), 13)) + b"0\r\n\r\n"
    t = serve_once(tmp_path / "s.sock",
                   b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + chunked, [])
    r = unixhttp.request(str(tmp_path / "s.sock"), "GET", "/v1/events", timeout=5)
    assert list(r.lines()) == lines
    t.join(5)


def test_a_cut_answer_and_a_non_http_answer_are_errors(tmp_path: Path):
    serve_once(tmp_path / "a.sock", b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort", [])
    r = unixhttp.request(str(tmp_path / "a.sock"), "GET", "/", timeout=5)
    with pytest.raises(unixhttp.ProtocolError, match="mid-answer"):
        r.read()
    serve_once(tmp_path / "b.sock", b"SSH-2.0-OpenSSH\r\n\r\n", [])
    with pytest.raises(unixhttp.ProtocolError, match="not an HTTP response"):
        unixhttp.request(str(tmp_path / "b.sock"), "GET", "/", timeout=5)


def test_no_daemon_is_a_plain_connection_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        unixhttp.request(str(tmp_path / "nobody.sock"), "GET", "/v1/ping", timeout=1)
