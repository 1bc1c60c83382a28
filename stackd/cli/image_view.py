"""How image commands talk to a person: transfer progress, sizes, the image table."""

from __future__ import annotations

import sys
from typing import TextIO

from stackd.images.models import ImageSummary
from stackd.images.progress import ProgressEvent


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1000
    raise AssertionError("unreachable")


class TransferPrinter:
    """Prints one line per blob state change; on a terminal, byte progress at most ~4/s."""

    FINAL = ("exists", "done", "mounted", "pushed", "cached", "step")

    def __init__(self, stream: TextIO | None = None) -> None:
        from stackd.cli import display

        self.stream = stream or sys.stderr
        self.mode = display.progress(self.stream)
        self.tty = self.mode == "tty"
        self._last: dict[str, str] = {}

    def __call__(self, ev: ProgressEvent) -> None:
        if self.mode == "quiet":
            return
        if self.mode == "json":
            if ev.action not in ("downloading", "pushing"):
                import json

                print(json.dumps({"item": ev.item, "action": ev.action,
                                  "current": ev.current, "total": ev.total}),
                      file=self.stream, flush=True)
            return
        if ev.action in ("downloading", "pushing"):
            if not self.tty:
                return
            pct = f"{100 * ev.current // ev.total}%" if ev.total else human_size(ev.current)
            line = f"{ev.item}: {ev.action} {pct}"
            if self._last.get(ev.item) == line:
                return
            self._last[ev.item] = line
            print(f"\r{line:<60}", end="", file=self.stream, flush=True)
            return
        prefix = "\r" if self.tty else ""
        if ev.action in ("step", "log"):
            print(f"{prefix}{ev.item}", file=self.stream, flush=True)
        elif ev.action in self.FINAL or ev.action in ("resolving", "unpacking"):
            size = f" ({human_size(ev.total)})" if ev.total else ""
            print(f"{prefix}{ev.item}: {ev.action}{size}", file=self.stream, flush=True)
        else:
            print(f"{prefix}{ev.item}: {ev.action}", file=self.stream, flush=True)


def image_rows(images: list[ImageSummary]) -> list[dict[str, str]]:
    """A row per name, under the names Docker's `images --format` templates use."""
    from stackd.images.reference import parse

    rows = []
    for img in images:
        for name in img.references:
            ref = parse(name)
            repo = ref.familiar().rsplit(":", 1)[0] if ref.tag else ref.familiar().split("@")[0]
            rows.append({"Repository": repo, "Tag": ref.tag or "<none>", "ID": img.id[7:19],
                         "Digest": img.digest, "CreatedAt": (img.created or "")[:19],
                         "Size": human_size(img.size)})
    return rows


def image_table(images: list[ImageSummary]) -> str:
    from stackd.cli.table import render

    return render(("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"),
                  [(r["Repository"], r["Tag"], r["ID"], r["CreatedAt"], r["Size"])
                   for r in image_rows(images)], gap="  ")
