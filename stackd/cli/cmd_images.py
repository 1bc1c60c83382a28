"""`stackd images`: the images in the local store, one line per name (docker's images);
`stackd images --stack` (compose's images): the image each of the stack's containers
runs, matched by its layers, since a container records layers rather than a name."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stackd.images.models import ImageSummary

HELP = "List images in the local store"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="print only image ids")
    parser.add_argument("--format", default="table",
                        help="table, json, or a Docker template: '{{.Repository}}:{{.Tag}}'")
    parser.add_argument("-s", "--stack", action="store_true",
                        help="the images of the stack's containers (compose's `images`)")
    parser.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]",
                        help="only this repository's images (of this tag), as docker's")


def run(args: argparse.Namespace) -> int:
    import json

    from stackd.cli.image_view import image_table
    from stackd.images import ImageStore
    from stackd.roots import Roots

    store = ImageStore(Roots.from_env().ensure())
    images = store.list()
    if args.stack:
        return _stack_images(args, store, images)
    if args.repository:
        images = matching(images, args.repository)
    if args.quiet:
        for img in images:
            print(img.id[7:19])
    elif args.format == "json":
        print(json.dumps([i.model_dump() for i in images], indent=2))
    elif args.format == "table":
        print(image_table(images))
    else:
        import sys

        from stackd.cli.goformat import render
        from stackd.cli.image_view import image_rows

        sys.stdout.write(render(args.format, image_rows(images)))
    return 0


def matching(images: list[ImageSummary], wanted: str) -> list[ImageSummary]:
    """The images with a name in `wanted`'s repository (and of its tag, when it names
    one), each showing those names only: `docker images redis`. Pure."""
    from stackd.images.reference import parse

    want = parse(wanted)
    tagged = ":" in wanted.rsplit("/", 1)[-1]
    out = []
    for img in images:
        names = tuple(r for r in img.references
                      if (ref := parse(r)).repository == want.repository
                      and (not tagged or ref.tag == want.tag))
        if names:
            out.append(img.model_copy(update={"references": names}))
    return out


def stack_rows(containers: list[tuple[str, tuple[str, ...]]],
               layers_of: dict[tuple[str, ...], Any]) -> list[dict[str, Any]]:
    """One row per container (name, layer dirs) of the stack: its image, found by the
    exact layers its root filesystem is made of (`layers_of`: layers → the store's
    Image). Pure."""
    rows = []
    for name, layers in sorted(containers):
        img = layers_of.get(layers)
        rows.append({"container": name,
                     "image": img.references[0] if img is not None else None,
                     "id": img.id if img is not None else None,
                     "size": img.size if img is not None else None,
                     "created": img.created if img is not None else None,
                     "platform": f"{img.os}/{img.architecture}" if img is not None
                     else None})
    return rows


def _stack_images(args: argparse.Namespace, store: Any, images: list[Any]) -> int:
    import json
    import time

    from stackd.cli.humanize import ago, decimal_size
    from stackd.cli.stackref import project_of
    from stackd.cli.table import render
    from stackd.daemon.host_verbs import project_layers
    from stackd.errors import StackdError
    from stackd.images.reference import parse

    containers = project_layers(store.roots, project_of(args))
    layers_of = {}
    for img in images:
        try:
            full = store.get(img.references[0])
        except StackdError:
            continue  # removed meanwhile
        layers_of[tuple(full.layer_dirs)] = full
    rows = stack_rows(containers, layers_of)
    if args.quiet:
        for r in rows:
            if r["id"]:
                print(r["id"][7:19])
        return 0
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    now = time.time()
    shown = []
    for r in rows:  # Compose's fields: the name split into repository and tag
        ref = parse(r["image"]) if r["image"] else None
        repo = ref.familiar().rsplit(":", 1)[0] if ref is not None and ref.tag else \
            ref.familiar().split("@")[0] if ref is not None else "<removed>"
        shown.append({"ContainerName": r["container"], "Repository": repo,
                      "Tag": (ref.tag if ref is not None else None) or "<none>",
                      "Platform": r["platform"] or "", "ID": (r["id"] or "")[7:19],
                      "Size": decimal_size(r["size"]) if r["size"] is not None else "",
                      "CreatedSince": ago(r["created"], now) if r["id"] else ""})
    if args.format != "table":
        import sys

        from stackd.cli.goformat import render as render_template

        sys.stdout.write(render_template(args.format, shown))
    else:
        # Compose's columns, in its order.
        print(render(("CONTAINER", "REPOSITORY", "TAG", "PLATFORM", "IMAGE ID", "SIZE",
                      "CREATED"),
                     [(r["ContainerName"], r["Repository"], r["Tag"], r["Platform"],
                       r["ID"] or "-", r["Size"] or "-", r["CreatedSince"] or "-")
                      for r in shown]))
    return 0
