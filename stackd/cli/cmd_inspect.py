"""`stackd inspect [-f TEMPLATE] [--type TYPE] NAME…`: Docker's `inspect`. Each name is
looked for as Docker looks for it — a container, then an image, a network, a volume —
and shown under Docker's field names (the views in cli/*_view.py): JSON, or each
object through a Go template (`{{.State.Status}}`, `{{.Mountpoint}}`). Every name is
found before anything is printed; one found nowhere is an error naming it."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from typing import Any

HELP = "Show containers, images, networks or volumes under Docker's field names"

TYPES = ("container", "image", "network", "volume")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--format", default=None,
                   help="a Docker template, one line per object: '{{.State.Status}}'; "
                        "json (the default): the objects as a JSON array")
    p.add_argument("--type", choices=TYPES, default=None,
                   help="look for this kind of object only")
    p.add_argument("names", nargs="+", metavar="NAME")


class _Finder:
    """Each kind's lookup, opened on first use and kept for the next name: a name found
    as a container never opens the image store."""

    def __init__(self) -> None:
        from stackd.roots import Roots

        self.roots = Roots.from_env()
        self._rows: list[dict[str, Any]] | None = None

    @functools.cached_property
    def _store(self) -> Any:
        from stackd.images import ImageStore

        return ImageStore(self.roots.ensure())

    @functools.cached_property
    def _container_names(self) -> dict[str, str]:
        """Container id → name, for a network's containers (any state, as listed by
        the runtime)."""
        from stackd.daemon.host_verbs import containers_here

        return {c.id: c.name for c in containers_here(self.roots)}

    def container(self, name: str) -> dict[str, Any] | None:
        from stackd.cli.cmd_container import docker_doc, find
        from stackd.errors import NotFoundError

        if self._rows is None:
            from stackd.cli.client import Client

            with Client() as client:
                self._rows = list(client.get("/v1/containers", all=True))
        try:
            return docker_doc(find(self._rows, name))
        except NotFoundError:
            return None

    def image(self, name: str) -> dict[str, Any] | None:
        from stackd.cli.image_view import docker_image
        from stackd.images.errors import ImageNotFoundError, ReferenceError_

        try:
            return docker_image(self._store.get(name))
        except (ImageNotFoundError, ReferenceError_):  # not found, or not an image's name
            return None

    def network(self, name: str) -> dict[str, Any] | None:
        from stackd.cli.network_view import docker_network
        from stackd.daemon.host_verbs import NetworkAdmin
        from stackd.errors import NotFoundError

        with NetworkAdmin(self.roots) as admin:
            try:
                described = admin.describe(name)
            except NotFoundError:
                return None
        return docker_network(described, self._container_names)

    def volume(self, name: str) -> dict[str, Any] | None:
        from stackd.cli.volume_view import docker_volume
        from stackd.daemon.host_verbs import VolumeAdmin
        from stackd.errors import NotFoundError, UsageError

        with VolumeAdmin(self.roots) as admin:
            try:
                return docker_volume(admin.inspect(name))
            except (NotFoundError, UsageError):  # none, or not a volume's name
                return None


def run(args: argparse.Namespace) -> int:
    from stackd.errors import NotFoundError

    finder = _Finder()
    kinds: dict[str, Callable[[str], dict[str, Any] | None]] = {
        "container": finder.container, "image": finder.image,
        "network": finder.network, "volume": finder.volume}
    order = [args.type] if args.type else list(TYPES)
    docs = []
    for name in args.names:
        doc = next((d for kind in order if (d := kinds[kind](name)) is not None), None)
        if doc is None:
            what = f"{args.type} " if args.type else "container, image, network or volume "
            raise NotFoundError(f"no {what}{name!r}",
                                hint="see `stackd container ls -a`, `stackd images`, "
                                     "`stackd network ls` and `stackd volume ls`")
        docs.append(doc)
    if args.format in (None, "json"):
        print(json.dumps(docs, indent=4))
    else:
        from stackd.cli.goformat import render

        sys.stdout.write(render(args.format, docs))
    return 0
