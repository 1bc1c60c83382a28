"""Who may use the console, and which requests may change something.

The console can restart, scale and roll back stacks: whoever holds a token can do
what root can through the daemon's socket. So:

- a token is a secret of 32 random bytes (or one of a token file's named tokens);
  `?token=` on a URL opens a session — a cookie that scripts cannot read (HttpOnly)
  and that no other site's page makes the browser send (SameSite=Strict), as
  Jupyter does;
- every request must name one of our own addresses in Host (a DNS-rebinding page on
  another name reaching 127.0.0.1 gets nothing);
- a request that changes something must come from one of our pages: its Origin (or,
  lacking that, Referer) is ours and it carries the session's CSRF token.

Everything here is pure: the middleware (app.py) feeds it headers and cookies.
"""

from __future__ import annotations

import hmac
import re
import secrets
import stat
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from stackd.errors import UsageError

TOKEN_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_TOKEN_LENGTH = 16
DEFAULT_NAME = "ui"
SESSION_COOKIE = "stackd_ui_session"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
SESSION_SECONDS = 12 * 3600
MAX_SESSIONS = 1000


class Tokens:
    """token → its name (the actor `stackd events` shows for what it did)."""

    def __init__(self, named: dict[str, str]) -> None:
        if not named:
            raise UsageError("no access token: the console would let nobody in")
        self._by_token = dict(named)

    @classmethod
    def generate(cls, name: str = DEFAULT_NAME) -> tuple[Tokens, str]:
        token = secrets.token_urlsafe(32)
        return cls({token: name}), token

    @classmethod
    def from_file(cls, path: Path) -> Tokens:
        """Lines `NAME TOKEN` (or `NAME:TOKEN`); blank lines and `#` comments skipped.
        The file must be nobody else's to read, as ssh insists for a private key."""
        try:
            st = path.stat()
            text = path.read_text()
        except OSError as exc:
            raise UsageError(f"cannot read the token file {path}: {exc.strerror}",
                             hint="give --token-file a readable file of `NAME TOKEN` lines"
                             ) from None
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise UsageError(f"the token file {path} is readable by others "
                             f"(mode {stat.S_IMODE(st.st_mode):o})",
                             hint=f"chmod 600 {path}")
        return cls(parse_token_file(text, str(path)))

    def name_of(self, token: str) -> str | None:
        """The token's name, None for no token of ours. Compared in constant time
        against every token, so the timing tells nothing of how close a guess was."""
        found = None
        for known, name in self._by_token.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                found = name
        return found


def parse_token_file(text: str, where: str) -> dict[str, str]:
    named: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, token = line.replace(":", " ", 1).partition(" ")
        token = token.strip()
        if not sep or not TOKEN_NAME.match(name):
            raise UsageError(f"{where}:{number}: expected `NAME TOKEN`, NAME of letters, "
                             "digits, _ . @ - (at most 64)")
        if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in token):
            raise UsageError(f"{where}:{number}: the token of {name} is too short or has "
                             f"spaces (at least {MIN_TOKEN_LENGTH} characters)",
                             hint="`python3 -c 'import secrets; print(secrets.token_urlsafe"
                             "(32))'` makes one")
        if token in named:
            raise UsageError(f"{where}:{number}: {name} repeats the token of {named[token]}")
        named[token] = name
    if not named:
        raise UsageError(f"{where}: no tokens in the token file")
    return named


@dataclass(frozen=True)
class Session:
    id: str
    actor: str
    csrf: str
    expires: float


class Sessions:
    """Open browser sessions, in memory: restarting `stackd ui` logs everyone out."""

    def __init__(self, *, seconds: float = SESSION_SECONDS, limit: int = MAX_SESSIONS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._seconds = seconds
        self._limit = limit
        self._clock = clock
        self._open: OrderedDict[str, Session] = OrderedDict()

    def open(self, actor: str) -> Session:
        session = Session(id=secrets.token_urlsafe(32), actor=actor,
                          csrf=secrets.token_urlsafe(32), expires=self._clock() + self._seconds)
        self._open[session.id] = session
        while len(self._open) > self._limit:
            self._open.popitem(last=False)  # the oldest goes first
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        session = self._open.get(session_id)
        if session is None:
            return None
        if session.expires < self._clock():
            del self._open[session_id]
            return None
        return session


def allowed_hosts(host: str, port: int, extra: tuple[str, ...] = ()) -> frozenset[str]:
    """The Host header values a request to us may carry: the listen address, and the
    loopback names when listening on loopback; `extra` for a name in front (a proxy)."""
    names = {host}
    if is_loopback(host):
        names |= {"localhost", "127.0.0.1", "::1"}
    names |= set(extra)
    out = set()
    for name in names:
        bracketed = f"[{name}]" if ":" in name else name
        out.add(f"{bracketed}:{port}".lower())
    return frozenset(out)


def is_loopback(host: str) -> bool:
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_ok(host_header: str | None, allowed: frozenset[str]) -> bool:
    return host_header is not None and host_header.lower() in allowed


def origin_ok(origin: str | None, referer: str | None, host_header: str, scheme: str) -> bool:
    """A state-changing request came from a page of ours: its Origin is ours, or,
    when the browser sent none, its Referer's origin is. Neither: refused ("null"
    origins — sandboxed frames, file: pages — included)."""
    expected = f"{scheme}://{host_header}".lower()
    if origin:
        return origin.lower() == expected
    if referer:
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}".lower() == expected
    return False


def csrf_ok(session: Session, supplied: str | None) -> bool:
    return bool(supplied) and hmac.compare_digest(session.csrf.encode(),
                                                  (supplied or "").encode())


def cookie_header(session: Session, *, secure: bool) -> str:
    attrs = [f"{SESSION_COOKIE}={session.id}", "Path=/", "HttpOnly", "SameSite=Strict",
             f"Max-Age={SESSION_SECONDS}"]
    if secure:
        attrs.append("Secure")
    return "; ".join(attrs)


def session_id_of(cookie_header_value: str | None) -> str | None:
    for part in (cookie_header_value or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == SESSION_COOKIE:
            return value
    return None

