"""Serve the stackd daemon's /metrics on the stack's network, and nothing else.

The daemon's socket controls every stack on the host, so it is not handed to
Prometheus: this forwarder, the only container that sees it, passes on exactly one
request, GET /metrics, and answers 404 to anything else.
"""

import http.server
import socket

SOCKET = "/run/stackd.sock"


def scrape() -> bytes:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(SOCKET)
        s.sendall(b"GET /metrics HTTP/1.0\r\nHost: stackd\r\n\r\n")
        data = b"".join(iter(lambda: s.recv(65536), b""))
    head, _, body = data.partition(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        raise OSError(f"the daemon answered {head[:60]!r}")
    return body


class Metrics(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path != "/metrics":
            self.send_error(404, "only /metrics is forwarded")
            return
        try:
            body = scrape()
        except OSError as err:
            self.send_error(502, f"stackd daemon: {err}")
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    http.server.ThreadingHTTPServer(("", 9099), Metrics).serve_forever()
