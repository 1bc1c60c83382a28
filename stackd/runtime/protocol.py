"""The monitor's wire format: one JSON object per line each way, on a unix socket.

Request: {"op": "create"|"start"|"kill"|"wait"|"delete"|"ping"|"hold"|"shutdown", ...}.
Reply: {"ok": true, ...} or
       {"ok": false, "kind": "<stackd.errors class>", "error": ..., "hint": ...}.
"""

from __future__ import annotations

import json

from stackd import errors
from stackd.errors import StackdError, UsageError
from stackd.runtime.layout import check_id
from stackd.runtime.specview import load_spec

TYPE_CHECKING = False  # typing's, without importing typing: see specview
if TYPE_CHECKING:
    from typing import Any

    from stackd.runtime.containerspec import ContainerSpec


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


def decode_request(line: bytes) -> dict[str, Any]:
    """One request line → its object; anything else is the client's mistake (UsageError),
    never an exception of ours."""
    try:
        request = json.loads(line)
    except ValueError:
        raise UsageError("runtime monitor: a request must be one JSON object per line",
                         hint='e.g. {"op": "ping"}') from None
    if not isinstance(request, dict) or not isinstance(request.get("op"), str):
        raise UsageError("runtime monitor: a request is a JSON object with a string \"op\"",
                         hint='e.g. {"op": "ping"}')
    return request


def request_id(request: dict[str, Any]) -> str:
    """The container id a request names, checked like every id: it becomes a path."""
    cid = request.get("id")
    if not isinstance(cid, str):
        raise UsageError(f"runtime monitor: {request['op']!r} needs a container \"id\" string")
    return check_id(cid)


def request_spec(request: dict[str, Any]) -> ContainerSpec:
    """The spec a create sends, checked against the model's schema without pydantic
    (specview): SpecError naming the first field that does not fit."""
    return load_spec(request.get("spec"))
