"""The middleware every request passes before any page: Host, session, and for a
request that changes something, Origin and the CSRF token (auth.py holds the rules).

Pure ASGI rather than Starlette's BaseHTTPMiddleware, which would buffer the
server-sent event streams. A form body (small: the console's forms are a few fields)
is read here to find its CSRF token, then handed on unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode

from stackd.ui import auth, pages

MAX_FORM = 64 * 1024
SAFE_METHODS = ("GET", "HEAD")

Scope = dict[str, Any]


@dataclass(frozen=True)
class Who:
    """The request's signed-in actor: its session (a browser) or a bearer token (a
    script, which no other site can make a browser send: no CSRF check)."""

    actor: str
    session: auth.Session | None


class Gate:
    def __init__(self, app: Any, *, tokens: auth.Tokens, sessions: auth.Sessions,
                 hosts: frozenset[str], secure: bool) -> None:
        self.app = app
        self.tokens = tokens
        self.sessions = sessions
        self.hosts = hosts
        self.secure = secure

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        host = headers.get("host")
        if not auth.host_ok(host, self.hosts):
            await _plain(send, 403, "refused: the Host header names none of this "
                         "console's addresses\n")
            return
        method = scope["method"]
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if "token" in query and method in SAFE_METHODS:
            await self._sign_in(scope, send, query)
            return
        session = self.sessions.get(auth.session_id_of(headers.get("cookie")))
        who = Who(session.actor, session) if session is not None else self._bearer(headers)
        if who is None:
            await _html(send, 401, pages.refused_page(
                "This console needs a token: this request carried none that it knows."))
            return
        if method not in SAFE_METHODS and who.session is not None:
            assert host is not None
            if not auth.origin_ok(headers.get("origin"), headers.get("referer"), host,
                                  "https" if self.secure else "http"):
                await _plain(send, 403, "refused: a request that changes something must "
                             "come from this console's own pages (Origin)\n")
                return
            body = await _read_body(receive)
            if body is None:
                await _plain(send, 413, "refused: the form is too large\n")
                return
            supplied = headers.get(auth.CSRF_HEADER) or _form_field(
                headers, body, auth.CSRF_FIELD)
            if not auth.csrf_ok(who.session, supplied):
                await _plain(send, 403, "refused: the form's CSRF token is missing or not "
                             "this session's; reload the page and try again\n")
                return
            receive = _replay(body)
        scope.setdefault("state", {})["who"] = who
        await self.app(scope, receive, _with_security_headers(send))

    def _bearer(self, headers: dict[str, str]) -> Who | None:
        kind, _, token = headers.get("authorization", "").partition(" ")
        if kind.lower() != "bearer" or not token:
            return None
        name = self.tokens.name_of(token.strip())
        return Who(name, None) if name is not None else None

    async def _sign_in(self, scope: Scope, send: Any, query: dict[str, list[str]]) -> None:
        """`?token=` opens a session: the cookie is set, and the page reloads itself
        without the token in its address (so it is not left in history or a Referer).
        A page that reloads itself rather than a redirect: a SameSite=Strict cookie
        set on a redirect reached from another site (a terminal, a chat) would not be
        sent with the redirected request."""
        name = self.tokens.name_of(query["token"][0])
        if name is None:
            await _html(send, 401, pages.refused_page("That token is not one of this "
                                                      "console's."))
            return
        session = self.sessions.open(name)
        rest = {k: v for k, v in query.items() if k != "token"}
        target = scope["path"] + (f"?{urlencode(rest, doseq=True)}" if rest else "")
        if not target.startswith("/") or target.startswith("//"):
            target = "/"
        safe = pages.e(target)
        body = (f'<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" '
                f'content="0;url={safe}"><title>stackd</title>'
                f'<p>Signed in as {pages.e(name)}. <a href="{safe}">Continue</a></p>')
        await _html(send, 200, body, extra=[
            (b"set-cookie", auth.cookie_header(session, secure=self.secure).encode()),
            (b"referrer-policy", b"no-referrer")])


def _form_field(headers: dict[str, str], body: bytes, field: str) -> str | None:
    if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return None
    values = parse_qs(body.decode("utf-8", "replace")).get(field)
    return values[0] if values else None


async def _read_body(receive: Any) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes) -> Any:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


SECURITY_HEADERS = [
    (b"x-frame-options", b"DENY"),  # no clickjacking through a frame of a confirm page
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
]


def _with_security_headers(send: Any) -> Any:
    async def wrapped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            names = {k.lower() for k, _ in message.get("headers", [])}
            extra = [(k, v) for k, v in SECURITY_HEADERS if k not in names]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return wrapped


async def _html(send: Any, status: int, body: str,
                extra: list[tuple[bytes, bytes]] | None = None) -> None:
    await _respond(send, status, body.encode(), b"text/html; charset=utf-8", extra or [])


async def _plain(send: Any, status: int, text: str) -> None:
    await _respond(send, status, text.encode(), b"text/plain; charset=utf-8", [])


async def _respond(send: Any, status: int, data: bytes, ctype: bytes,
                   extra: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", ctype),
                            (b"content-length", str(len(data)).encode()),
                            *SECURITY_HEADERS, *extra]})
    await send({"type": "http.response.body", "body": data})
