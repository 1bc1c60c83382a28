"""Decompressed streams: whole or an error, never a shorter file that looks whole."""

from __future__ import annotations

import gzip
import io
import os

import pytest
import zstandard

from stackd.images.compression import CorruptStreamError, LayerStream, open_decompressed
from stackd.images.zstdframes import ZstdFrames


class Trickle(io.RawIOBase):
    """A source that hands out at most `step` bytes a read, as a socket or pipe does."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step = data, step

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        piece, self.data = self.data[:min(n, self.step)], self.data[min(n, self.step):]
        return piece


def members(*parts: bytes) -> bytes:
    return b"".join(gzip.compress(p) for p in parts)


def read_all(blob: bytes, step: int = 1 << 20) -> bytes:
    return open_decompressed(Trickle(blob, step)).read()  # type: ignore[arg-type]


def stream_all(blob: bytes) -> bytes:
    layer = LayerStream(Trickle(blob, 1 << 20))  # type: ignore[arg-type]
    return layer.read()


@pytest.mark.parametrize("step", [7, 4096, 1 << 20])
def test_members_and_zero_padding_come_out_whole(step: int) -> None:
    a, b = os.urandom(300_000), b"b" * 100_000
    blob = members(a, b) + bytes(1500)  # padding as a tape archive leaves it
    assert read_all(blob, step) == a + b
    assert stream_all(blob) == a + b


@pytest.mark.parametrize("read", [read_all, stream_all])
def test_a_gzip_cut_after_a_member_header_is_an_error(read) -> None:  # type: ignore[no-untyped-def]
    first, second = members(b"a" * 5000), members(os.urandom(50_000))
    # Cut inside the second member: what came before decompresses cleanly and ends
    # exactly where a reader would take the stream's end for the archive's.
    for cut in (20, len(second) // 2, len(second) - 4):
        with pytest.raises(CorruptStreamError, match="cut short"):
            read(first + second[:cut])


@pytest.mark.parametrize("read", [read_all, stream_all])
def test_corrupt_compressed_data_is_one_error_type(read) -> None:  # type: ignore[no-untyped-def]
    blob = bytearray(members(b"hello " * 10_000))
    blob[12:40] = b"\xff" * 28
    with pytest.raises(CorruptStreamError, match="corrupt"):
        read(bytes(blob))
    with pytest.raises(CorruptStreamError, match="corrupt"):
        read(b"\x28\xb5\x2f\xfd" + b"\xff" * 64)  # a zstd frame header that is not one


def test_zstd_and_plain_pass_through() -> None:
    data = os.urandom(10_000) + b"z" * 100_000
    assert read_all(zstandard.ZstdCompressor().compress(data)) == data
    assert read_all(data, 999) == data
    assert stream_all(data) == data


def zstd_frames(data: bytes, **kw: bool) -> bytes:
    return zstandard.ZstdCompressor(**kw).compress(data)  # type: ignore[arg-type]


def streamed(data: bytes) -> bytes:
    """A frame as a streaming compressor writes it: no content size in its header."""
    obj = zstandard.ZstdCompressor(write_checksum=True).compressobj()
    return obj.compress(data) + obj.flush()


SKIPPABLE = (0x184D2A53).to_bytes(4, "little") + (5).to_bytes(4, "little") + b"user!"


@pytest.mark.parametrize("blob", [
    zstd_frames(b"x" * 100_000),
    zstd_frames(os.urandom(200_000), write_checksum=True),
    zstd_frames(b"small", write_content_size=False),
    streamed(os.urandom(50_000) + b"z" * 300_000),
    zstd_frames(b"one") + SKIPPABLE + zstd_frames(b"two", write_checksum=True),
    zstd_frames(b""),
], ids=["rle-ish", "checksum", "no-size", "streamed", "skippable-between", "empty"])
def test_zstd_frames_end_where_the_stream_does_and_not_before(blob: bytes) -> None:
    for step in (1, 3, 4096, len(blob)):
        frames = ZstdFrames()
        for at in range(0, len(blob), step):
            frames.feed(blob[at:at + step])
        assert frames.complete, step
    for cut in sorted({1, 4, 5, 7, len(blob) // 2, len(blob) - 1}):
        frames = ZstdFrames()
        frames.feed(blob[:cut])
        assert not frames.complete, cut


@pytest.mark.parametrize("read", [read_all, stream_all])
def test_a_zstd_stream_cut_inside_a_frame_is_an_error(read) -> None:  # type: ignore[no-untyped-def]
    """python-zstandard's reader gave the prefix it could decode, without a word."""
    first, second = zstd_frames(b"a" * 5000), zstd_frames(os.urandom(50_000))
    assert read(first + second) == b"a" * 5000 + zstandard.ZstdDecompressor().decompress(second)
    for cut in (3, 9, len(second) // 2, len(second) - 1):
        with pytest.raises(CorruptStreamError, match="zstd stream is cut short"):
            read(first + second[:cut])
