"""How image commands talk to a person: transfer progress, sizes, the image table."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from stackd.cli.humanize import decimal_size
from stackd.images.models import Image, ImageSummary
from stackd.images.progress import ProgressEvent


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
            pct = f"{100 * ev.current // ev.total}%" if ev.total else decimal_size(ev.current)
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
            size = f" ({decimal_size(ev.total)})" if ev.total else ""
            print(f"{prefix}{ev.item}: {ev.action}{size}", file=self.stream, flush=True)
        else:
            print(f"{prefix}{ev.item}: {ev.action}", file=self.stream, flush=True)


def image_rows(images: list[ImageSummary], now: float | None = None) -> list[dict[str, str]]:
    """A row per name, under the names Docker's `images --format` templates use."""
    import time

    from stackd.cli.humanize import ago
    from stackd.images.reference import parse

    now = time.time() if now is None else now
    rows = []
    for img in images:
        for name in img.references:
            ref = parse(name)
            repo = ref.familiar().rsplit(":", 1)[0] if ref.tag else ref.familiar().split("@")[0]
            rows.append({"Repository": repo, "Tag": ref.tag or "<none>", "ID": img.id[7:19],
                         "Digest": img.digest, "CreatedAt": (img.created or "")[:19],
                         "CreatedSince": ago(img.created, now), "Size": decimal_size(img.size)})
    return rows


def image_table(images: list[ImageSummary], now: float | None = None) -> str:
    from stackd.cli.table import render

    return render(("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"),
                  [(r["Repository"], r["Tag"], r["ID"], r["CreatedSince"], r["Size"])
                   for r in image_rows(images, now)], gap="  ")


def docker_image(img: Image) -> dict[str, Any]:
    """An image under the names Docker's `image inspect` gives it, for `--format`
    templates scripts use (`{{.Id}}`, `{{.Config.Env}}`, `{{.RepoTags}}`). Pure."""
    from stackd.cli.goformat import GoStruct
    from stackd.images.reference import parse

    refs = [parse(r) for r in img.references]
    # Every field of Docker's image Config, so that asking for one the image does not
    # set reads as Docker's (nil, empty) and a misspelt one is refused (GoStruct).
    config = GoStruct({
        "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False,
        "AttachStdout": False, "AttachStderr": False, "ExposedPorts": {}, "Tty": False,
        "OpenStdin": False, "StdinOnce": False, "Env": [], "Cmd": None, "Healthcheck": None,
        "ArgsEscaped": False, "Image": "", "Volumes": {}, "WorkingDir": "",
        "Entrypoint": None, "OnBuild": None, "Labels": {}, "StopSignal": "", "Shell": None,
        **img.config.to_oci()})
    return GoStruct({
        "Id": img.id,
        "RepoTags": [r.familiar() for r in refs if r.tag],
        "RepoDigests": sorted({f"{r.familiar().rsplit(':', 1)[0] if r.tag else r.familiar()}"
                               f"@{img.digest}" for r in refs if not r.digest}),
        "Created": img.created or "",
        "Size": img.size,
        "Architecture": img.architecture,
        "Os": img.os,
        "Config": config,
    })
