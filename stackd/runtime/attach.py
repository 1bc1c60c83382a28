"""Attach this process's terminal (or stdin and stdout) to a container created with
`stdin_open` (`stackd run -i/-t`): the caller's side of the monitor's `attach`.

The monitor hands over the container's input end — its pty master, or the write end
of its stdin pipe — by SCM_RIGHTS, then streams the output from the container's start
(kept until this first attach) and finally the exit. Input goes straight into that
descriptor; with a TTY our terminal is raw and its size follows ours (SIGWINCH), so
Ctrl-C and Ctrl-D are bytes for the container's terminal, as with docker run -it.
Single-threaded and blocking, for the CLI.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import selectors
import signal
import socket
import sys
import termios
import tty as ttymod
from typing import Any

from stackd.errors import UnavailableError
from stackd.roots import Roots
from stackd.runtime import protocol
from stackd.runtime.layout import MonitorPaths, check_id

DETACH_KEYS = b"\x10\x11"  # Ctrl-P Ctrl-Q, docker's


def attach(roots: Roots, container_id: str, *, stdin: bool,
           detach_keys: bytes | None = None) -> dict[str, Any] | None:
    """Relay until the container exits; its exit record (None if the monitor went).
    detach_keys: these bytes (Docker's Ctrl-P Ctrl-Q: DETACH_KEYS) typed into a TTY end
    the relay and leave the container
    running, as docker attach: then {"detached": True}."""
    check_id(container_id)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            sock.connect(str(MonitorPaths(roots.run).socket))
        except OSError as err:
            raise UnavailableError(f"cannot reach the runtime monitor: {err.strerror}",
                                   hint="is the container still there? see `stackd ps -a`") \
                from None
        sock.sendall(protocol.encode({"op": "attach", "id": container_id}))
        data, fds, _, _ = socket.recv_fds(sock, 65536, 1)
        line, _, rest = data.partition(b"\n")
        reply = json.loads(line) if line else {"ok": False, "error": "no answer"}
        protocol.raise_error(reply)
        return _relay(sock, bytearray(rest), fds[0] if fds else None,
                      tty=bool(reply.get("tty")), stdin=stdin, detach_keys=detach_keys)
    finally:
        sock.close()


def _copy_winsize(src: int, dst: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.ioctl(dst, termios.TIOCSWINSZ, fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8))


def split_detach(held: bytes, chunk: bytes, keys: bytes = DETACH_KEYS
                 ) -> tuple[bytes, bytes, bool]:
    """Typed input against the detach keys: (what to send on, what to hold back — the
    start of the keys, typed so far —, whether they were typed). Pure. A start of them
    followed by anything else is sent on, as docker does."""
    data = held + chunk
    at = data.find(keys)
    if at >= 0:
        return data[:at], b"", True
    for n in range(min(len(keys) - 1, len(data)), 0, -1):
        if data.endswith(keys[:n]):
            return data[:-n], data[-n:], False
    return data, b"", False


def _relay(sock: socket.socket, buf: bytearray, fd: int | None, *, tty: bool,
           stdin: bool, detach_keys: bytes | None = None) -> dict[str, Any] | None:
    our_tty = os.isatty(0)
    saved = termios.tcgetattr(0) if tty and our_tty else None
    previous = signal.getsignal(signal.SIGWINCH)
    if tty and our_tty and fd is not None:
        pty_fd = fd
        _copy_winsize(0, pty_fd)
        signal.signal(signal.SIGWINCH, lambda _s, _f: _copy_winsize(0, pty_fd))
    if saved is not None and stdin:
        ttymod.setraw(0)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    reading = stdin and fd is not None
    if reading:
        try:
            sel.register(0, selectors.EVENT_READ)
        except (PermissionError, ValueError):  # a regular file or /dev/null
            reading = False
            assert fd is not None
            while chunk := os.read(0, 65536):
                _write_all(fd, chunk)
            if tty:
                _write_all(fd, b"\x04")
            else:
                os.close(fd)
                fd = None
    held = b""
    try:
        while True:
            exit_record = _take_lines(buf)
            if exit_record is not None:
                return exit_record
            ready = {key.fd for key, _ in sel.select()}
            if 0 in ready and reading:
                chunk = os.read(0, 65536)
                if chunk and tty and detach_keys:
                    chunk, held, detached = split_detach(held, chunk, detach_keys)
                    with contextlib.suppress(OSError):
                        _write_all(fd, chunk)  # type: ignore[arg-type]
                    if detached:
                        return {"detached": True}
                elif chunk:
                    with contextlib.suppress(OSError):
                        _write_all(fd, chunk)  # type: ignore[arg-type]
                else:  # our EOF is the process's
                    reading = False
                    sel.unregister(0)
                    if tty:
                        with contextlib.suppress(OSError):
                            _write_all(fd, b"\x04")  # type: ignore[arg-type]
                    else:
                        os.close(fd)  # type: ignore[arg-type]
                        fd = None
            if sock.fileno() in ready:
                chunk = sock.recv(65536)
                if not chunk:
                    return None
                buf += chunk
    finally:
        sel.close()
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        signal.signal(signal.SIGWINCH, previous)
        if fd is not None:  # ours: the monitor sent us a copy
            with contextlib.suppress(OSError):
                os.close(fd)


def _take_lines(buf: bytearray) -> dict[str, Any] | None:
    """Write out every complete output line in buf (and drop it); the exit record if
    one came."""
    while (end := buf.find(b"\n")) >= 0:
        message = json.loads(bytes(buf[:end]))
        del buf[:end + 1]
        if "exit" in message:
            return dict(message["exit"])
        out = sys.stderr if message.get("stream") == "stderr" else sys.stdout
        out.buffer.write(base64.b64decode(message.get("data", "")))
        out.flush()
    return None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
