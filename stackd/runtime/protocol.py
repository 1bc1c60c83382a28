"""The monitor's wire format: one JSON object per line each way, on a unix socket.

Request: {"op": "create"|"start"|"kill"|"wait"|"delete"|"ping"|"shutdown", ...}.
Reply: {"ok": true, ...} or
       {"ok": false, "kind": "<stackd.errors class>", "error": ..., "hint": ...}.
"""

from __future__ import annotations

import json
from typing import Any

from stackd import errors
from stackd.errors import StackdError


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode() + b"\n"


def error_reply(e: StackdError) -> dict[str, Any]:
    # Name the nearest class of the shared tree, so any client can raise the same kind.
    kind = next(c.__name__ for c in type(e).__mro__ if c.__module__ == errors.__name__)
    return {"ok": False, "kind": kind, "error": e.message, "hint": e.hint}


def raise_error(reply: dict[str, Any]) -> None:
    if reply.get("ok"):
        return
    cls = getattr(errors, reply.get("kind") or "", None)
    if not (isinstance(cls, type) and issubclass(cls, StackdError)):
        cls = errors.HostError
    raise cls(reply.get("error") or "the runtime monitor failed", hint=reply.get("hint"))
