"""Container logs as JSON lines, one record per line of output, like Docker's json-file
driver: {"log": "text\\n", "stream": "stdout", "time": "2026-11-27T23:00:00.123456789Z"}.

The monitor writes them (`LogWriter`, rotating by size); any process reads them
(`read_records`), oldest rotated file first.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from json.encoder import encode_basestring
from pathlib import Path

from stackd.errors import disk_full
from stackd.filemodes import open_private
from stackd.runtime.model import LogRecord

# A line longer than this is cut into several records, as Docker does at 16 KiB.
MAX_LINE = 16 * 1024


def format_time(ns: int) -> str:
    seconds, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:09d}Z"


def display_time(when: datetime) -> str:
    """As `docker logs -t` shows a line's time: RFC 3339 in UTC, with a Z."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    # datetime keeps microseconds: drop the last three digits of the nanoseconds.
    head, _, frac = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}").replace(tzinfo=UTC)


# A record is built around the json module's string encoder rather than by a json.dumps
# of a dict per line: the same bytes, ten times faster, and a container printing in a
# tight loop makes this the monitor's hottest code.
def _record_head(text: bytes) -> bytes:
    return b'{"log": ' + encode_basestring(text.decode("utf-8", "replace")).encode()


def _record_tail(stream: str, now: int) -> bytes:
    return f', "stream": "{stream}", "time": "{format_time(now)}"}}\n'.encode()


def rotated(path: Path, n: int) -> Path:
    return path.with_name(f"{path.name}.{n}")


class LogWriter:
    def __init__(self, path: Path, max_size: int, max_files: int) -> None:
        self.path = path
        self.max_size = max_size
        self.max_files = max(max_files, 1)
        self._partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}
        self._fd = open_private(path, os.O_WRONLY | os.O_APPEND)
        self._size = os.fstat(self._fd).st_size
        # Records dropped because the disk was full; said in the log once there is room.
        self.lost = 0
        self._torn = False  # the last write stopped mid-record

    def feed(self, stream: str, data: bytes) -> None:
        """Bytes as read from a pipe; whole lines become records, the rest waits."""
        buf = self._partial[stream] + data
        lines = buf.split(b"\n")
        self._partial[stream] = lines.pop()
        now = time.time_ns()
        tail = _record_tail(stream, now)
        out = [_record_head(line + b"\n") + tail for line in lines]
        while len(self._partial[stream]) >= MAX_LINE:
            chunk, self._partial[stream] = (self._partial[stream][:MAX_LINE],
                                            self._partial[stream][MAX_LINE:])
            out.append(_record_head(chunk) + tail)
        self._write(out)

    def flush(self, stream: str) -> None:
        """End of a stream: a last line without newline is still a record."""
        rest = self._partial[stream]
        self._partial[stream] = b""
        if rest:
            self._write([self._record(stream, rest, time.time_ns())])

    def close(self) -> None:
        for stream in self._partial:
            self.flush(stream)
        os.close(self._fd)

    @staticmethod
    def _record(stream: str, text: bytes, now: int) -> bytes:
        return _record_head(text) + _record_tail(stream, now)

    def _write(self, records: list[bytes]) -> None:
        """Append records, rotating between two records so no file outgrows max_size
        (unless one record alone does)."""
        batch: list[bytes] = []
        pending = 0
        for rec in records:
            if batch and self._size + pending + len(rec) > self.max_size:
                self._append(batch)
                batch, pending = [], 0
            if self._size and self._size + len(rec) > self.max_size:
                self._rotate()
            batch.append(rec)
            pending += len(rec)
        if batch:
            self._append(batch)

    def _append(self, batch: list[bytes]) -> None:
        """Write records; on a full disk drop them (the container must not block on its
        output, and the monitor must not fail) and count them in `lost`."""
        data = b"".join(batch)
        if self.lost:
            note = self._record("stderr", f"[stackd: {self.lost} line(s) of output lost: "
                                "no space left on the disk]\n".encode(), time.time_ns())
            data = (b"\n" if self._torn else b"") + note + data
        try:
            written = os.write(self._fd, data)  # short when the disk fills meanwhile
        except OSError as e:
            if disk_full(e) is None:
                raise
            written = 0
        self._size += written
        if written < len(data):
            # A record cut short is one unreadable line (readers skip those); the next
            # write starts on a fresh line.
            self.lost += len(batch)
            self._torn = self._torn or written > 0
            return
        self.lost, self._torn = 0, False

    def _rotate(self) -> None:
        os.close(self._fd)
        if self.max_files == 1:
            os.truncate(self.path, 0)
        else:
            for n in range(self.max_files - 1, 0, -1):
                src = self.path if n == 1 else rotated(self.path, n - 1)
                if src.exists():
                    os.replace(src, rotated(self.path, n))
        self._fd = open_private(self.path, os.O_WRONLY | os.O_APPEND)
        self._size = 0


def log_files(path: Path) -> list[Path]:
    """Every file of a container's log, oldest first."""
    older = []
    n = 1
    while rotated(path, n).exists():
        older.append(rotated(path, n))
        n += 1
    return [*reversed(older), *([path] if path.exists() else [])]


def parse_record(line: bytes) -> LogRecord | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None  # a record being written right now
    text = data["log"]
    if text.endswith("\n"):
        text = text[:-1]
    return LogRecord(time=parse_time(data["time"]), stream=data["stream"], line=text)


def read_records(path: Path) -> Iterator[LogRecord]:
    return read_records_of(log_files(path))


def read_records_of(files: list[Path]) -> Iterator[LogRecord]:
    for file in files:
        try:
            with open(file, "rb") as f:
                for raw in f:
                    if raw.endswith(b"\n"):
                        rec = parse_record(raw)
                        if rec is not None:
                            yield rec
        except FileNotFoundError:
            continue  # rotated away while we read
