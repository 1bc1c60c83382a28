"""A file the user named for a command's output (`export -o`, `image save -o`, `config
-o`): written whole or not at all, and a name that cannot be one said as such.

The bytes go into a hidden temporary beside the file and are renamed over it once
complete, so a failure half-way leaves neither a half file nor the temporary. What
the user can fix — no such directory, a directory at that name, a name too long, no
permission, a full disk — is a `UsageError` naming the file and why, not a traceback.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from stackd.errors import UsageError


@contextmanager
def replaced(path: str | os.PathLike[str], what: str) -> Iterator[BinaryIO]:
    """Write the file at `path` through the yielded stream; `what`: the option that
    named it (`export -o`), for the message."""
    target = Path(path)
    if not str(path) or target.name in ("", ".", ".."):
        raise UsageError(f"{what} {str(path)!r}: not a file name",
                         hint="name the file to write, e.g. out.tar")
    if len(os.fsencode(target.name)) > 255:  # said now, not after the whole output
        raise UsageError(f"{what} {str(path)[:80]!r}…: the file name is longer than a "
                         "file system allows (255 bytes)", hint="name the file shorter")
    tmp = target.with_name(f".{target.name[:200]}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        out = open(tmp, "xb")  # noqa: SIM115 (closed below, before the rename)
    except OSError as e:
        raise _said(what, path, e) from None
    try:
        with out:
            yield out
        os.replace(tmp, target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise _said(what, path, e) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _said(what: str, path: str | os.PathLike[str], e: OSError) -> UsageError:
    return UsageError(f"{what} {os.fspath(path)!r}: cannot write it: {e.strerror}",
                      hint="name a file in a directory that exists and you may write to")
