"""The CLI's one table printer: a header and rows, left-aligned columns, no trailing blanks;
a cell's control characters shown as `?` (an image's command is in some tables)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from stackd.printable import shown


def render(header: Sequence[str], rows: Iterable[Sequence[object]], *, gap: str = "   ") -> str:
    lines = [tuple(header), *(tuple(shown(str(v)) for v in row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(gap.join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip()
                     for line in lines)
