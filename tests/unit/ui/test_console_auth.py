"""The console's gate: who gets in (a token, then a session cookie), and which
requests may change something (ours by Host and Origin, with the session's CSRF
token). Driven through the real ASGI middleware with httpx, no server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from stackd.errors import UsageError
from stackd.ui import auth
from stackd.ui.gate import Gate
from stackd.ui.serve import check_tls, parse_listen

PORT = 8470
HOST = f"127.0.0.1:{PORT}"
ORIGIN = f"http://{HOST}"


async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The app behind the gate: says who it was let in as."""
    body = b""
    if scope["method"] == "POST":
        body = (await receive()).get("body", b"")
    who = scope["state"]["who"]
    text = f"{who.actor} {body.decode()}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": text})


def make_gate(clock: list[float] | None = None) -> tuple[Gate, str]:
    tokens, token = auth.Tokens.generate("alice")
    sessions = auth.Sessions(clock=(lambda: clock[0]) if clock else __import__("time").monotonic)
    return Gate(inner, tokens=tokens, sessions=sessions,
                hosts=auth.allowed_hosts("127.0.0.1", PORT), secure=False), token


def client(gate: Gate) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=gate), base_url=ORIGIN)


async def signed_in(c: httpx.AsyncClient, token: str) -> str:
    """Sign in with ?token=; the session's CSRF token (as a confirmation page has it)."""
    r = await c.get("/", params={"token": token})
    assert r.status_code == 200
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    assert "token" not in r.text.split("url=")[1].split('"')[0]  # the address drops it
    sid = auth.session_id_of(cookie.split(";")[0])
    session = c._transport.app.sessions.get(sid)  # type: ignore[attr-defined]
    assert session is not None and session.actor == "alice"
    return session.csrf


async def test_no_token_no_entry() -> None:
    gate, token = make_gate()
    async with client(gate) as c:
        assert (await c.get("/")).status_code == 401
        assert (await c.get("/", params={"token": token + "x"})).status_code == 401
        assert (await c.post("/actions/restart", data={"x": "1"})).status_code == 401
        assert (await c.get("/", headers={"Authorization": "Bearer nope"})).status_code == 401


async def test_a_token_opens_a_session_and_names_the_actor() -> None:
    gate, token = make_gate()
    async with client(gate) as c:
        await signed_in(c, token)
        r = await c.get("/stacks")
        assert r.status_code == 200 and r.text.startswith("alice")


async def test_bearer_token_for_scripts_needs_no_csrf() -> None:
    gate, token = make_gate()
    async with client(gate) as c:
        r = await c.post("/actions/restart", data={"service": "web"},
                         headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.text == "alice service=web"


async def test_another_host_name_is_refused() -> None:
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 gets nothing,
    not even with a valid token."""
    gate, token = make_gate()
    async with client(gate) as c:
        r = await c.get("/", params={"token": token}, headers={"Host": f"evil.example:{PORT}"})
        assert r.status_code == 403
        assert (await c.get("/", headers={"Host": f"localhost:{PORT}"})).status_code == 401


async def test_state_changes_need_our_origin_and_the_csrf_token() -> None:
    gate, token = make_gate()
    async with client(gate) as c:
        csrf = await signed_in(c, token)
        form = {"service": "web", "csrf": csrf}
        cases = [
            ({"Origin": "http://evil.example"}, form, 403),  # another site's form
            ({"Origin": "null"}, form, 403),  # a sandboxed frame, a file: page
            ({}, form, 403),  # neither Origin nor Referer
            ({"Referer": "http://evil.example/x"}, form, 403),
            ({"Origin": ORIGIN}, {"service": "web"}, 403),  # no CSRF token
            ({"Origin": ORIGIN}, {"service": "web", "csrf": "guess"}, 403),
            ({"Origin": ORIGIN}, form, 200),
            ({"Referer": f"{ORIGIN}/actions/restart"}, form, 200),
        ]
        for headers, data, status in cases:
            r = await c.post("/actions/restart", data=data, headers=headers)
            assert r.status_code == status, (headers, data, r.text)
        ok = await c.post("/actions/restart", data=form, headers={"Origin": ORIGIN})
        assert ok.text.startswith("alice service=web")  # the body reaches the app intact
        by_header = await c.post("/x", content=b"{}", headers={
            "Origin": ORIGIN, "X-CSRF-Token": csrf, "Content-Type": "application/json"})
        assert by_header.status_code == 200


async def test_a_session_expires() -> None:
    now = [1000.0]
    gate, token = make_gate(now)
    async with client(gate) as c:
        await signed_in(c, token)
        assert (await c.get("/")).status_code == 200
        now[0] += auth.SESSION_SECONDS + 1
        assert (await c.get("/")).status_code == 401


def test_token_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("# who may use the console\nalice a-long-enough-token-1234\n"
                    "bob:another-long-token-5678\n\n")
    os.chmod(path, 0o600)
    tokens = auth.Tokens.from_file(path)
    assert tokens.name_of("a-long-enough-token-1234") == "alice"
    assert tokens.name_of("another-long-token-5678") == "bob"
    assert tokens.name_of("a-long-enough-token-123") is None

    os.chmod(path, 0o644)
    with pytest.raises(UsageError, match=r"readable by others \(mode 644\)"):
        auth.Tokens.from_file(path)
    for text, message in [("alice short", "too short"),
                          ("justonefield", "expected `NAME TOKEN`"),
                          ("a b c\n", "too short"), ("", "no tokens"),
                          ("alice x-long-enough-token\nbob x-long-enough-token", "repeats")]:
        with pytest.raises(UsageError, match=message):
            auth.parse_token_file(text, "tokens")


def test_listen_and_tls() -> None:
    assert parse_listen("127.0.0.1:8470") == parse_listen(":8470")
    assert parse_listen("[::1]:9000").netloc == "[::1]:9000"
    with pytest.raises(UsageError, match="HOST:PORT"):
        parse_listen("8470x")
    assert check_tls(parse_listen("127.0.0.1:8470"), None, None) is False
    assert check_tls(parse_listen("localhost:8470"), None, None) is False
    for address in ("0.0.0.0:8470", "192.0.2.1:8470", "[::]:8470", "example.org:8470"):
        with pytest.raises(UsageError, match=r"without TLS: its token"):
            check_tls(parse_listen(address), None, None)
    with pytest.raises(UsageError, match="go together"):
        check_tls(parse_listen("0.0.0.0:8470"), Path("/etc/hostname"), None)


def test_allowed_hosts() -> None:
    assert auth.allowed_hosts("127.0.0.1", 1) == {"127.0.0.1:1", "localhost:1", "[::1]:1"}
    assert auth.allowed_hosts("192.0.2.1", 1, ("console.example",)) == {
        "192.0.2.1:1", "console.example:1"}
