"""The CLI's one table printer: a header and rows, left-aligned columns, no trailing blanks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def render(header: Sequence[str], rows: Iterable[Sequence[object]], *, gap: str = "   ") -> str:
    lines = [tuple(header), *(tuple(str(v) for v in row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(gap.join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip()
                     for line in lines)
