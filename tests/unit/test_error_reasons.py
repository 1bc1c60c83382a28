"""A foreign error's reason, as a user reads it: its words, none of Python's."""

from __future__ import annotations

import errno

import httpx
import pytest

from stackd.errors import reason


@pytest.mark.parametrize(("exc", "said"), [
    (httpx.ConnectError("[Errno -2] Name or service not known"), "Name or service not known"),
    (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "Connection refused"),
    (httpx.ReadTimeout(""), "read timeout"),  # says nothing itself: its kind, in words
    (TimeoutError(), "timeout"),
    (httpx.RemoteProtocolError("Server disconnected without sending a response."),
     "Server disconnected without sending a response."),
])
def test_reason(exc: BaseException, said: str) -> None:
    assert reason(exc) == said
