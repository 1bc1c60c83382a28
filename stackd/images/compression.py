"""Streams in and out of gzip and zstd, told apart by their magic bytes, not by media type."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from typing import BinaryIO, cast

import zstandard
from zlib_ng import zlib_ng

from stackd.images.zstdframes import ZstdFrames

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CHUNK = 1 << 20
# zlib-ng's stub types `error` as an instance; it is the exception class.
_INFLATE_ERROR = cast("type[Exception]", zlib_ng.error)


class CorruptStreamError(OSError):
    """A compressed stream that does not decompress, or ends inside a gzip member.

    An OSError, as the standard library's BadGzipFile is, so whoever reads archives
    already treats it as an unreadable file.
    """


class _ChunkReader(io.RawIOBase):
    """The chunks of a generator as a plain reader."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._cur = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._cur:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._cur = memoryview(chunk)
        n = min(len(b), len(self._cur))
        b[:n] = self._cur[:n]
        self._cur = self._cur[n:]
        return n


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


class _Walked(io.RawIOBase):
    """Passes a source's bytes on, showing each to a zstd frame walker."""

    def __init__(self, raw: io.RawIOBase, frames: ZstdFrames) -> None:
        self._raw = raw
        self._frames = frames

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        n = self._raw.readinto(b) or 0
        self._frames.feed(memoryview(b)[:n])
        return n


def open_decompressed(raw: BinaryIO) -> BinaryIO:
    """A reader of the uncompressed bytes of `raw`, whatever of gzip/zstd/none it holds."""
    return io.BufferedReader(_ChunkReader(_decompressed_chunks(raw)), CHUNK)


def compression_of(path_or_head: bytes) -> str:
    if path_or_head.startswith(GZIP_MAGIC):
        return "gzip"
    if path_or_head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"


class LayerStream:
    """A layer's uncompressed bytes as a forward-only file, hashed as they are decompressed.

    Each decompressed chunk is hashed once and then handed out as slices of a
    memoryview: no copy through stacked readers (tarfile's stream buffer, a
    BufferedReader, a hashing reader), which cost more than decompressing and
    hashing together. `tell`/`seek` (forward only) are what tarfile's seekable mode
    needs, so it parses headers while `copy_to` writes file data straight from the
    chunks.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._chunks = _decompressed_chunks(raw)
        self.hash = hashlib.sha256()
        self.size = 0  # bytes decompressed (and hashed) so far
        self._cur = memoryview(b"")
        self._at = 0  # offset in _cur
        self._pos = 0  # bytes handed out

    def _fill(self) -> bool:
        for chunk in self._chunks:
            if chunk:
                self.hash.update(chunk)
                self.size += len(chunk)
                self._cur = memoryview(chunk)
                self._at = 0
                return True
        return False

    def _take(self, n: int) -> memoryview:
        """Up to `n` (> 0) bytes as a view; empty at the end of the stream."""
        if self._at >= len(self._cur) and not self._fill():
            return memoryview(b"")
        piece = self._cur[self._at:self._at + n]
        self._at += len(piece)
        self._pos += len(piece)
        return piece

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = 1 << 62
        first = self._take(n)
        if len(first) == n or not first:
            return bytes(first)
        parts = [bytes(first)]
        got = len(first)
        while got < n and (piece := self._take(n - got)):
            parts.append(bytes(piece))
            got += len(piece)
        return b"".join(parts)

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            pos += self._pos
        elif whence != io.SEEK_SET:
            raise io.UnsupportedOperation("a layer stream seeks forward only")
        if pos < self._pos:
            raise io.UnsupportedOperation("a layer stream seeks forward only")
        while self._pos < pos and self._take(pos - self._pos):
            pass
        return self._pos

    def copy_to(self, fd: int, n: int) -> int:
        """Write the next `n` bytes to `fd`; returns how many there were (< n: truncated)."""
        left = n
        while left and (piece := self._take(left)):
            left -= len(piece)
            while piece:
                piece = piece[os.write(fd, piece):]
        return n - left

    def read_rest(self) -> None:
        """Hash what is left (tar's trailing blocks) so the digest covers the whole stream."""
        self._at = len(self._cur)
        while self._fill():
            self._at = len(self._cur)

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


def _decompressed_chunks(raw: BinaryIO) -> Iterator[bytes]:
    head = raw.read(4)
    try:
        if head.startswith(GZIP_MAGIC):
            yield from _gunzip_chunks(head, raw)
        elif head.startswith(ZSTD_MAGIC):
            frames = ZstdFrames()
            reader = zstandard.ZstdDecompressor().stream_reader(
                io.BufferedReader(_Walked(_Peekable(raw, head), frames), CHUNK),
                read_across_frames=True)
            while chunk := reader.read(CHUNK):
                yield chunk
            if not frames.complete:
                raise CorruptStreamError("the zstd stream is cut short: it ends inside "
                                         "a frame")
        else:
            yield head
            while chunk := raw.read(CHUNK):
                yield chunk
    except (_INFLATE_ERROR, zstandard.ZstdError) as exc:
        raise CorruptStreamError(f"the compressed data is corrupt: {exc}") from exc


def _gunzip_chunks(head: bytes, raw: BinaryIO) -> Iterator[bytes]:
    """gzip (multi-member), at most 4 chunks out per call: a bomb never sits in memory.

    zlib-ng's inflate, not the standard library's zlib: the same format at about twice
    the speed on real layers (143 MiB of /usr: 232 ms against 428), and its checksum
    four times faster.

    A stream that ends inside a member is an error, not a shorter file: cut at a tar
    header, it would read as a whole archive with its last files missing.
    """
    d = zlib_ng.decompressobj(wbits=31)
    data = head
    in_member = False  # d has been given bytes of a member it has not finished
    while True:
        if not data:
            data = raw.read(CHUNK)
            if not data:
                if in_member:
                    raise CorruptStreamError("the gzip stream is cut short: it ends inside "
                                             "a member, before its checksum")
                return
        if not in_member and not data.strip(b"\0"):
            data = b""  # zero padding after the last member is not one
            continue
        in_member = True
        yield d.decompress(data, 4 * CHUNK)
        data = d.unconsumed_tail
        if d.eof:
            rest = d.unused_data
            d = zlib_ng.decompressobj(wbits=31)
            in_member = False
            data = rest  # another member may follow
