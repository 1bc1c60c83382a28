"""A request loop against a published port, for the rolling-update and balancing tests."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field


def get(port: int) -> str:
    """One HTTP request on a fresh connection (so each is balanced anew); its body.
    Raises OSError or ValueError when the request fails in any way."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.sendall(b"GET / HTTP/1.0\r\nHost: stackd\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    head, _, body = data.decode(errors="replace").partition("\r\n\r\n")
    status = head.splitlines()[0] if head else ""
    if not (status.startswith("HTTP/1.") and " 200 " in status):
        raise ValueError(f"bad response: {status!r}")
    return body.strip()


def served(port: int, seconds: float) -> tuple[Counter[str], list[str]]:
    """Bodies seen, and how each failed request failed, over a loop bounded in time."""
    seen: Counter[str] = Counter()
    failed: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            seen[get(port)] += 1
        except (OSError, ValueError) as err:
            failed.append(f"{time.monotonic():.3f} {err!r}")
    return seen, failed


@dataclass
class RequestLoop:
    """Requests back to back from a thread until `stop`; each result in order."""

    port: int
    bodies: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RequestLoop:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.bodies.append(get(self.port))
            except (OSError, ValueError) as err:
                self.failures.append(repr(err))


def wait_serving(port: int, backends: int, timeout: float = 30) -> None:
    """Until `backends` distinct bodies answer with no failure: replicas are ready only
    once healthy, and `up` (even with --wait, which the daemon does not act on yet)
    returns once they are started."""
    deadline = time.monotonic() + timeout
    while True:
        seen, failed = served(port, 0.5)
        if not failed and len(seen) == backends:
            return
        assert time.monotonic() < deadline, f"not {backends} serving: {seen}, {failed[:3]}"
