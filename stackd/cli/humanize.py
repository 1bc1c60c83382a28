"""Docker's words for durations and sizes (its go-units rules), for every listing that
shows them: `ps`'s CREATED and STATUS, `images`' CREATED and SIZE, `stats`' I/O."""

from __future__ import annotations


def human_duration(seconds: float) -> str:
    """A duration as Docker words it (HumanDuration): `Less than a second`, `1 second`,
    `About a minute`, `3 hours`, `2 weeks`. Pure."""
    s = max(0, int(seconds))
    hours = int(seconds / 3600 + 0.5)  # rounded from here on, as Docker's
    for limit, text in (
            (1, "Less than a second"), (2, "1 second"), (60, f"{s} seconds"),
            (120, "About a minute"), (3600, f"{s // 60} minutes")):
        if s < limit:
            return text
    for limit_h, text in (
            (2, "About an hour"), (48, f"{hours} hours"), (24 * 7 * 2, f"{hours // 24} days"),
            (24 * 30 * 2, f"{hours // 24 // 7} weeks"),
            (24 * 365 * 2, f"{hours // 24 // 30} months")):
        if hours < limit_h:
            return text
    return f"{s // 3600 // 24 // 365} years"


def ago(iso: str | None, now: float) -> str:
    """`2 years ago` for an RFC 3339 time (an image's `created`); `N/A` without one, as
    Docker's. Pure."""
    from datetime import datetime  # not at import: `ps` starts without it

    if not iso:
        return "N/A"
    try:
        then = datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return "N/A"
    return f"{human_duration(now - then)} ago"


def decimal_size(n: float) -> str:
    """A size as Docker shows it (HumanSizeWithPrecision, 3): decimal units, three
    significant digits (`648B`, `1.23kB`, `45.6MB`). Pure."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.3g}{unit}"
        n /= 1000
    return f"{n:.3g}TB"


def binary_size(n: float) -> str:
    """A size in binary units, as Docker's `stats` and `info` show memory (`512B`,
    `1.5MiB`, `23.5GiB`). Pure."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1024
    return f"{n}B"
