"""The contents of a stack's config and secret `file:`s, read bounded.

The daemon reads them once, when `up` records a revision, and hands them to every
reconcile after (reconciler's `ReconcileOptions.files`). A stack file is hostile
input: each must be a regular file of at most MAX_FILE_BYTES, since a stack naming a
FIFO would block the reader for ever and one naming /dev/zero would fill its memory.
"""

from __future__ import annotations

import os
import stat

from stackd.errors import Location, SpecError
from stackd.spec.model import Stack

# Swarm's limits are 500 KB a secret and 1000 KB a config. Text content also travels
# inline in a container's spec, and a request to the runtime monitor may be 16 MiB.
MAX_FILE_BYTES = 1 << 20


def read_stack_files(stack: Stack) -> dict[str, bytes]:
    """path → bytes of every config/secret `file:` that exists (blocking I/O). A
    missing one is left out: the reconciler reports it with its place in the stack."""
    out: dict[str, bytes] = {}
    for kind, objs in (("configs", stack.configs), ("secrets", stack.secrets)):
        for name, obj in sorted(objs.items()):
            if obj.file is None or obj.file in out:
                continue
            try:
                out[obj.file] = _read_regular(obj.file, f"{kind[:-1]} {name!r}",
                                              stack.location_of((kind, name)))
            except OSError:
                pass
    return out


def _read_regular(path: str, what: str, loc: Location | None) -> bytes:
    # O_NONBLOCK: opening a FIFO must not wait for a writer.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SpecError(f"{what}: {path} is not a regular file", location=loc,
                            hint="point file: at a plain file")
        chunks, size = [], 0
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_FILE_BYTES:
                raise SpecError(f"{what}: {path} is larger than {MAX_FILE_BYTES >> 20} MiB",
                                location=loc, hint="mount a big file as a volume instead")
        return b"".join(chunks)
    finally:
        os.close(fd)
