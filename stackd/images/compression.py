"""Streams in and out of gzip and zstd, told apart by their magic bytes, not by media type."""

from __future__ import annotations

import hashlib
import io
import zlib
from typing import BinaryIO

import zstandard

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CHUNK = 1 << 20


class _GzipReader(io.RawIOBase):
    """gzip (multi-member) decompression as a plain reader; faster than GzipFile's seeking."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._d = zlib.decompressobj(wbits=31)
        self._buf = b""
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        n = len(b)
        while len(self._buf) < n and not self._eof:
            data = self._d.unconsumed_tail or self._raw.read(CHUNK)
            if not data:
                self._eof = True
                break
            self._buf += self._d.decompress(data, 4 * CHUNK)
            if self._d.eof:
                rest = self._d.unused_data
                self._d = zlib.decompressobj(wbits=31)
                if rest.strip(b"\0"):
                    self._buf += self._d.decompress(rest, 4 * CHUNK)
        out, self._buf = self._buf[:n], self._buf[n:]
        b[: len(out)] = out
        return len(out)


class HashingReader(io.RawIOBase):
    """Passes bytes through while hashing them and counting them."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.hash = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._raw.read(len(b))
        if not data:
            return 0
        self.hash.update(data)
        self.size += len(data)
        b[: len(data)] = data
        return len(data)

    def read_rest(self) -> None:
        """Hash what is left (tar's trailing zero blocks) so the digest covers the whole stream."""
        while True:
            data = self._raw.read(CHUNK)
            if not data:
                return
            self.hash.update(data)
            self.size += len(data)

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


class _Peekable(io.RawIOBase):
    def __init__(self, raw: BinaryIO, head: bytes) -> None:
        self._raw = raw
        self._head = head

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._raw.read(len(b))
        b[: len(data)] = data
        return len(data)


def open_decompressed(raw: BinaryIO) -> BinaryIO:
    """A reader of the uncompressed bytes of `raw`, whatever of gzip/zstd/none it holds."""
    head = raw.read(4)
    src = io.BufferedReader(_Peekable(raw, head), CHUNK)
    if head.startswith(GZIP_MAGIC):
        return io.BufferedReader(_GzipReader(src), CHUNK)
    if head.startswith(ZSTD_MAGIC):
        return zstandard.ZstdDecompressor().stream_reader(src, read_across_frames=True)
    return src


def compression_of(path_or_head: bytes) -> str:
    if path_or_head.startswith(GZIP_MAGIC):
        return "gzip"
    if path_or_head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"
