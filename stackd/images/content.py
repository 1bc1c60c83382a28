"""The blob store: content by sha256, verified as it is written, never visible half-written.

A blob is streamed into `ingest/` under a random name while it is hashed; only when
its digest (and size, when announced) match is it fsynced and renamed to
`blobs/sha256/<hex>`. Writeback is started every few MiB as the blob arrives, so the
fsync at the end waits for the last few MiB, not the whole blob. Renames are atomic,
so a crash leaves at worst an orphan in `ingest/`, which prune removes; two writers of
the same blob both rename identical bytes into place.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import BinaryIO

from stackd.filemodes import open_private, private_dir
from stackd.images.compression import CHUNK
from stackd.images.digests import hex_of, sha256_digest
from stackd.images.errors import BlobNotFoundError, DigestMismatchError
from stackd.runtime.syscalls import start_writeback
from stackd.trees import remove_tree

# Bytes written between two requests to begin writeback: a layer's fsync used to wait
# for all of it (30-70 ms for 25 MB here), the last one ending the pull (#20).
WRITEBACK_STEP = 8 << 20


class Ingest:
    """One blob being written. `write` chunks, then `commit` (verifies) or `abort`."""

    def __init__(self, store: BlobStore, expected: str | None, size: int | None) -> None:
        self.store = store
        self.expected = expected
        self.expected_size = size
        self.tmp = store.ingest_dir / f"{uuid.uuid4().hex}.part"
        self.file = os.fdopen(open_private(self.tmp, os.O_WRONLY | os.O_TRUNC), "wb")
        self.hash = hashlib.sha256()
        self.size = 0
        self.written_back = 0  # bytes whose writeback has been started

    def write(self, data: bytes) -> None:
        self.hash.update(data)
        self.size += len(data)
        if self.expected_size is not None and self.size > self.expected_size:
            self.abort()
            raise DigestMismatchError(
                f"blob {self.expected}: more than the announced {self.expected_size} bytes",
                hint="the source is corrupt or was tampered with; pull or load it again",
            )
        self.file.write(data)
        if self.size - self.written_back >= WRITEBACK_STEP:
            self.file.flush()
            try:
                start_writeback(self.file.fileno(), self.written_back,
                                self.size - self.written_back)
            except OSError:
                # Only a head start: a file system that refuses it still gets the fsync.
                self.written_back = 1 << 62
                return
            self.written_back = self.size

    def commit(self, what: str = "blob") -> str:
        digest = "sha256:" + self.hash.hexdigest()
        try:
            if self.expected is not None and digest != self.expected:
                raise DigestMismatchError(
                    f"{what}: content hashes to {digest}, expected {self.expected}",
                    hint="the source is corrupt or was tampered with; pull or load it again",
                )
            if self.expected_size is not None and self.size != self.expected_size:
                raise DigestMismatchError(
                    f"{what} {digest}: {self.size} bytes, expected {self.expected_size}",
                    hint="the source is corrupt or was tampered with; pull or load it again",
                )
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            os.rename(self.tmp, self.store.path(digest))
        except BaseException:
            self.abort()
            raise
        return digest

    def abort(self) -> None:
        if not self.file.closed:
            self.file.close()
        self.tmp.unlink(missing_ok=True)


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blob_dir = root / "blobs" / "sha256"
        self.ingest_dir = root / "ingest"
        private_dir(self.blob_dir.parent, parents=True)
        private_dir(self.blob_dir)
        private_dir(self.ingest_dir)

    def path(self, digest: str) -> Path:
        return self.blob_dir / hex_of(digest)

    def has(self, digest: str) -> bool:
        return self.path(digest).exists()

    def size(self, digest: str) -> int:
        return self.path(digest).stat().st_size

    def ingest(self, expected: str | None = None, size: int | None = None) -> Ingest:
        return Ingest(self, expected, size)

    def put_bytes(self, data: bytes, expected: str | None = None, what: str = "blob") -> str:
        digest = sha256_digest(data)
        if expected is not None and digest != expected:
            raise DigestMismatchError(
                f"{what}: content hashes to {digest}, expected {expected}",
                hint="the source is corrupt or was tampered with; pull or load it again",
            )
        if not self.has(digest):
            ing = self.ingest(digest, len(data))
            ing.write(data)
            ing.commit(what)
        return digest

    def put_stream(self, src: BinaryIO, expected: str | None = None, size: int | None = None,
                   what: str = "blob") -> str:
        ing = self.ingest(expected, size)
        try:
            while chunk := src.read(CHUNK):
                ing.write(chunk)
        except BaseException:
            ing.abort()
            raise
        return ing.commit(what)

    def read_bytes(self, digest: str, what: str = "blob") -> bytes:
        """Small blobs (manifests, configs), re-verified on every read."""
        try:
            data = self.path(digest).read_bytes()
        except FileNotFoundError:
            raise BlobNotFoundError(
                f"{what} {digest} is missing from the image store",
                hint="pull or load the image again",
            ) from None
        if sha256_digest(data) != digest:
            raise DigestMismatchError(
                f"{what} {digest} in the image store is corrupt",
                hint="remove the image (stackd rmi) and pull it again",
            )
        return data

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise BlobNotFoundError(
                f"blob {digest} is missing from the image store",
                hint="pull or load the image again",
            ) from None

    def all(self) -> list[str]:
        return sorted("sha256:" + p.name for p in self.blob_dir.iterdir()
                      if len(p.name) == 64)

    def delete(self, digest: str) -> int:
        p = self.path(digest)
        try:
            size = p.stat().st_size
            p.unlink()
        except FileNotFoundError:
            return 0
        return size

    def clear_ingest(self) -> None:
        remove_tree(self.ingest_dir, ignore_errors=True)
        private_dir(self.ingest_dir, parents=True)
