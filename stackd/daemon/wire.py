"""How errors and streams travel between the daemon and its clients.

Errors cross the socket as `{"error": {"type": "NotFoundError", "message": …,
"hint": …}}` with an HTTP status chosen by the error's class, and become the same
typed `StackdError` again in the client, so the CLI prints and exits exactly as it
would for an error raised in-process. Streams are NDJSON: one JSON object per line;
a stream that fails part-way ends with an error object line.
"""

from __future__ import annotations

import json
from typing import Any

from stackd import errors

STATUS: dict[type[errors.StackdError], int] = {
    errors.UsageError: 400,
    errors.SpecError: 422,
    errors.NotFoundError: 404,
    errors.AlreadyExistsError: 409,
    errors.ConflictError: 409,
    errors.UnavailableError: 503,
    errors.HostError: 500,
}

NDJSON = "application/x-ndjson"


def status_of(exc: errors.StackdError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def _base_name(exc: errors.StackdError) -> str:
    """The nearest class of the shared tree, so the client can rebuild it without
    importing the package that raised it."""
    for cls in type(exc).__mro__:
        if cls.__module__ == errors.__name__:
            return cls.__name__
    return "StackdError"


def error_body(exc: errors.StackdError) -> dict[str, Any]:
    body: dict[str, Any] = {"type": _base_name(exc), "message": exc.message}
    if exc.hint:
        body["hint"] = exc.hint
    location = getattr(exc, "location", None)
    if location is not None:
        body["location"] = {"file": location.file, "line": location.line,
                            "column": location.column}
    return {"error": body}


def error_from_body(body: Any, status: int) -> errors.StackdError:
    """The typed error a daemon's error body describes (best effort on odd bodies)."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return errors.UnavailableError(f"the daemon answered {status}: {body!r}")
    cls = getattr(errors, str(err.get("type")), None)
    if not (isinstance(cls, type) and issubclass(cls, errors.StackdError)):
        cls = errors.StackdError
    message = str(err.get("message", "unknown error"))
    hint = err.get("hint")
    if cls is errors.SpecError:
        loc = err.get("location")
        location = errors.Location(**loc) if isinstance(loc, dict) else None
        return errors.SpecError(message, location=location, hint=hint)
    return cls(message, hint=hint)


def query_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """A request's query: None left out, booleans as the API reads them."""
    return {k: ("true" if v else "false") if isinstance(v, bool) else v
            for k, v in (params or {}).items() if v is not None}


def decode_response(status: int, data: bytes) -> Any:
    """A whole response's body as JSON (or text); the typed error for a status ≥ 400."""
    try:
        body = json.loads(data) if data else None
    except ValueError:
        body = data.decode(errors="replace")
    if status >= 400:
        raise error_from_body(body, status)
    return body


def ndjson_line(obj: Any) -> bytes:
    return (json.dumps(obj, separators=(",", ":"), default=str) + "\n").encode()


class Batch(list[Any]):
    """Items a stream sends in one write, each its own NDJSON line as ever: a log's
    history sent a line at a time paid a task switch and a write per line (200,000
    lines took 30 s)."""


def ndjson_body(item: Any) -> bytes:
    """The bytes of one streamed item, or of every item of a `Batch`."""
    if isinstance(item, Batch):
        return b"".join(ndjson_line(i) for i in item)
    return ndjson_line(item)
