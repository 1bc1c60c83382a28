"""`ADD https://…`: a file fetched by the builder (on the host, as Docker's builder
fetches it), hashed as it is written, named after the URL's last path segment.

What a URL may name is checked: http and https only, a file name that is a plain name
(no `/`, `.` or `..`, however it was escaped). The file is 0600 as Docker makes it,
with the server's Last-Modified as its time when one is given.
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from stackd.errors import reason
from stackd.images.errors import BuildError

TIMEOUT = httpx.Timeout(60.0, connect=10.0)
CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Fetched:
    url: str
    name: str  # the file name the URL gives, used when the destination is a directory
    path: Path
    digest: str  # sha256:<hex> of the content


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def file_name(url: str) -> str | None:
    """The URL's last path segment, unescaped, if it is a plain file name."""
    name = posixpath.basename(unquote(urlsplit(url).path))
    if not name or name in (".", "..") or "/" in name or "\x00" in name:
        return None
    return name


async def fetch(url: str, into: Path, where: str) -> Fetched:
    """Download `url` into the directory `into`; `where` (file:line) starts each error."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BuildError(f"{where}: ADD {url}: not an http(s) URL",
                         hint="ADD fetches http:// and https:// URLs")
    path = into / f"fetched-{hashlib.sha256(url.encode()).hexdigest()[:16]}"
    h = hashlib.sha256()
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=True) as client, \
                client.stream("GET", url) as r:
            if r.status_code != 200:
                raise BuildError(f"{where}: ADD {url}: the server answered "
                                 f"{r.status_code} {r.reason_phrase}",
                                 hint="check the URL, or put the file in the build "
                                      "context and COPY it")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as f:
                async for chunk in r.aiter_bytes(CHUNK):
                    h.update(chunk)
                    f.write(chunk)
            modified = r.headers.get("last-modified")
    except httpx.HTTPError as err:
        raise BuildError(f"{where}: ADD {url}: {reason(err)}",
                         hint="is the server reachable from this host?") from None
    if modified:
        try:
            when = email.utils.parsedate_to_datetime(modified).timestamp()
            os.utime(path, (when, when))
        except (TypeError, ValueError, OverflowError):
            pass  # an unreadable date: the file keeps the time it was written
    return Fetched(url, file_name(url) or "", path, f"sha256:{h.hexdigest()}")
