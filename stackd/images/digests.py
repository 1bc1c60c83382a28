"""OCI content digests (`sha256:<64 hex>`): parsing, computing, and the path a blob lives at."""

from __future__ import annotations

import hashlib
import re

from stackd.images.errors import ReferenceError_

_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")


def is_digest(text: str) -> bool:
    return bool(_DIGEST.match(text))


def check_digest(text: str) -> str:
    """Return `text` if it is a sha256 digest we can verify, else raise a usage error."""
    if not _DIGEST.match(text):
        raise ReferenceError_(
            f"'{text}' is not a sha256 digest",
            hint="digests look like sha256: followed by 64 lower-case hex characters",
        )
    return text


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def hex_of(digest: str) -> str:
    return check_digest(digest).split(":", 1)[1]

