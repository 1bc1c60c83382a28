"""Where the frames of a zstd stream end (RFC 8878 §3.1), told from its headers alone.

python-zstandard's stream reader reads a stream cut inside a frame as a shorter one,
without a word, and its decompressobj, which knows, has no bound on its output (a
bomb would sit in memory). So the compressed bytes also pass through this walker:
it reads each frame's header and each block's 3-byte header and skips their bodies
by count — no decompressing, a few operations per block of up to 128 KiB — and at
the end says whether the stream stopped between frames. Pure.
"""

from __future__ import annotations

ZSTD_MAGIC = 0xFD2FB528
_SKIPPABLE = 0x184D2A50  # … to 0x184D2A5F: a frame of user data, skipped whole
_RLE = 1
_RESERVED = 3


class ZstdFrames:
    """Fed the compressed bytes in order (`feed`); `complete` once they end."""

    def __init__(self) -> None:
        self._pending = bytearray()  # a header being gathered
        self._need = 4  # bytes the header being gathered has
        self._state = "magic"  # magic | skippable | frame | frame-rest | block | lost
        self._skip = 0  # body bytes still to pass over
        self._checksum = False
        self._after = "magic"  # what comes after the body being skipped
        self.frames = 0  # frames seen to their end

    def feed(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view and self._state != "lost":
            if self._skip:
                n = min(self._skip, len(view))
                self._skip -= n
                view = view[n:]
                if not self._skip:
                    self._end_of_body()
                continue
            n = min(self._need - len(self._pending), len(view))
            self._pending += view[:n]
            view = view[n:]
            if len(self._pending) == self._need:
                header, self._pending = bytes(self._pending), bytearray()
                self._header(header)

    @property
    def complete(self) -> bool:
        """The stream so far ends where a frame does (or it is not zstd we can follow,
        which the decompressor then judges)."""
        if self._state == "lost":
            return True
        return self._state == "magic" and not self._pending and not self._skip

    def _header(self, header: bytes) -> None:
        if self._state == "magic":
            magic = int.from_bytes(header, "little")
            if magic == ZSTD_MAGIC:
                self._state, self._need = "frame", 1
            elif magic & 0xFFFFFFF0 == _SKIPPABLE:
                self._state, self._need = "skippable", 4
            else:
                self._state = "lost"
        elif self._state == "skippable":
            self._body(int.from_bytes(header, "little"), after="magic")
        elif self._state == "frame":
            fhd = header[0]
            single = bool(fhd & 0x20)
            self._checksum = bool(fhd & 0x04)
            rest = ((0 if single else 1) + (0, 1, 2, 4)[fhd & 0x03]
                    + ((1 if single else 0), 2, 4, 8)[fhd >> 6])
            if rest:  # window, dictionary id, content size: passed over
                self._state, self._need = "frame-rest", rest
            else:
                self._state, self._need = "block", 3
        elif self._state == "frame-rest":
            self._state, self._need = "block", 3
        elif self._state == "block":
            value = int.from_bytes(header, "little")
            last, kind, size = value & 1, (value >> 1) & 3, value >> 3
            if kind == _RESERVED:
                self._state = "lost"
                return
            body = 1 if kind == _RLE else size
            self._body(body, after="last" if last else "block")

    def _body(self, size: int, after: str) -> None:
        self._after = after
        self._skip = size
        if not size:
            self._end_of_body()

    def _end_of_body(self) -> None:
        if self._after == "block":
            self._state, self._need = "block", 3
        elif self._after == "last" and self._checksum:
            self._checksum = False
            self._body(4, after="magic-frame")
        else:  # "last" without a checksum, "magic-frame", a skippable frame's "magic"
            if self._after != "magic":
                self.frames += 1
            self._state, self._need = "magic", 4
