"""`KEY=VALUE` words of a command line (`-e`, `-l`, `--label`, `--opt`) read as one rule."""

from __future__ import annotations

from stackd.errors import UsageError


def key_values(items: list[str], flag: str) -> dict[str, str]:
    """Each item split at its first '='; one without a key or an '=' is refused,
    naming the flag. A later item for a key wins, as Docker's."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} {item!r} is not KEY=VALUE", hint=f"e.g. {flag} KEY=value")
        out[key] = value
    return out
