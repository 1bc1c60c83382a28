"""Small pictures as inline SVG: a sparkline of a container's recent usage, and the
stack's dependency graph drawn by Graphviz from the daemon's dot source."""

from __future__ import annotations

import html
import shutil
from collections.abc import Sequence

import trio

WIDTH, HEIGHT = 180, 40


def sparkline(values: Sequence[float], *, label: str, unit: str) -> str:
    """A line of the last values, scaled to the largest, with the latest as text
    (the number is what a reader needs; the line shows the trend)."""
    latest = values[-1] if values else 0.0
    top = max(values, default=0.0) or 1.0
    step = WIDTH / max(len(values) - 1, 1)
    points = " ".join(f"{i * step:.1f},{HEIGHT - 2 - (v / top) * (HEIGHT - 4):.1f}"
                      for i, v in enumerate(values))
    title = html.escape(f"{label}: {latest:.1f} {unit}")
    return (f'<svg role="img" aria-label="{title}" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}"><title>{title}</title>'
            f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" '
            f'points="{points}"/></svg>')


async def graph_svg(dot_source: str) -> str | None:
    """`dot -Tsvg` of the source, as an inline <svg> element (no XML prologue); None
    when Graphviz is not installed."""
    dot = shutil.which("dot")
    if dot is None:
        return None
    result = await trio.run_process([dot, "-Tsvg"], stdin=dot_source.encode(),
                                    capture_stdout=True, capture_stderr=True, check=False)
    if result.returncode != 0:
        return None
    svg = result.stdout.decode(errors="replace")
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else None
