"""Credentials never reach a user's screen, an event or the state database: URLs are
shown with their password masked, and any text git printed is masked too."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

MASK = "***"
# scheme://user:password@host… anywhere in a text (git's own messages quote URLs).
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@\s:]*)"
                       r"(?::(?P<password>[^/@\s]*))?@")


def mask_url(url: str) -> str:
    """The URL with its password (if any) replaced by ***; the user name stays."""
    return mask_text(url)


def mask_text(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every URL password masked, and every one of `secrets` (a token's
    content) replaced wherever it occurs."""
    def one(m: re.Match[str]) -> str:
        if m.group("password") is None:
            return m.group(0)
        return f"{m.group('scheme')}{m.group('user')}:{MASK}@"

    out = _USERINFO.sub(one, text)
    for secret in secrets:
        if secret:
            out = out.replace(secret, MASK)
    return out


def has_password(url: str) -> bool:
    try:
        return urlsplit(url).password is not None
    except ValueError:
        return False
