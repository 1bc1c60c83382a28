"""Image references, normalised the way Docker does.

`redis` → `docker.io/library/redis:latest`; `ghcr.io/a/b` keeps its host;
`localhost:5000/x` has a host because of the port; `name@sha256:…` pins a digest.
Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stackd.images.digests import is_digest
from stackd.images.errors import ReferenceError_

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAINS = ("index.docker.io", "registry-1.docker.io")
DEFAULT_TAG = "latest"

_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DOMAIN = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"(?::[0-9]+)?$|^\[[0-9a-fA-F:]+\](?::[0-9]+)?$"
)


@dataclass(frozen=True, slots=True)
class Reference:
    domain: str  # "docker.io", "127.0.0.1:5000", "ghcr.io"
    path: str  # "library/redis"
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """`domain/path`: the name without tag or digest."""
        return f"{self.domain}/{self.path}"

    @property
    def locator(self) -> str:
        """What to ask the registry for: the digest when pinned, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def __str__(self) -> str:
        text = self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def familiar(self) -> str:
        """The short form people type: `redis:7` rather than `docker.io/library/redis:7`."""
        text = str(self)
        if self.domain == DEFAULT_DOMAIN:
            text = text[len(DEFAULT_DOMAIN) + 1 :]
            if text.startswith("library/") and "/" not in self.path[len("library/") :]:
                text = text[len("library/") :]
        return text


def parse(text: str) -> Reference:
    """Parse and normalise an image reference; tagless, digestless names get `:latest`."""
    original = text
    if not text or text != text.strip():
        raise _bad(original, "it is empty or has surrounding spaces")
    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not is_digest(digest):
            raise _bad(original, f"'{digest}' is not a sha256 digest")
    tag = None
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > slash:
        text, tag = text[:colon], text[colon + 1 :]
        if not _TAG.match(tag):
            raise _bad(original, f"'{tag}' is not a valid tag")
    first, sep, rest = text.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        domain, path = first, rest
        if not _DOMAIN.match(domain):
            raise _bad(original, f"'{domain}' is not a valid registry host")
    else:
        domain, path = DEFAULT_DOMAIN, text
    if domain in LEGACY_DOMAINS:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"library/{path}"
    if not path:
        raise _bad(original, "the repository name is empty")
    for component in path.split("/"):
        if not _COMPONENT.match(component):
            why = ("repository names must be lower case"
                   if component.lower() != component and _COMPONENT.match(component.lower())
                   else f"'{component}' is not a valid name component")
            raise _bad(original, why)
    if len(path) > 255:
        raise _bad(original, "the repository name is longer than 255 characters")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def _bad(text: str, why: str) -> ReferenceError_:
    return ReferenceError_(
        f"invalid image reference '{text}': {why}",
        hint="references look like name, name:tag, host:port/name:tag or name@sha256:<hex>",
    )
