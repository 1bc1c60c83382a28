"""`stackd image SUBVERB`: inspect, ls, rm, load, save, import, prune, pull, push, tag."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, BinaryIO

from stackd.cli import image_bootstrap
from stackd.errors import UsageError

if TYPE_CHECKING:
    from stackd.images import ImageStore

HELP = "Manage images: inspect, ls, rm, load, save, import, prune, bootstrap"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="subverb", required=True, metavar="SUBVERB")
    p = sub.add_parser("inspect", help="print images' details as JSON")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-f", "--format", metavar="TEMPLATE",
                   help="a Docker template over Docker's fields: '{{.Id}}', '{{.Config.Env}}'")
    p = sub.add_parser("ls", help="list images")
    p.add_argument("-q", "--quiet", action="store_true")
    p = sub.add_parser("rm", help="remove images")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-f", "--force", action="store_true",
                   help="untag an image containers use (kept while they do)")
    p = sub.add_parser("load", help="load a docker save tarball or an OCI archive")
    p.add_argument("-i", "--input", metavar="FILE", help="the archive (default: stdin)")
    p = sub.add_parser("save", help="save images to a tarball (docker save format)")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-o", "--output", metavar="FILE", help="the archive (default: stdout)")
    p = sub.add_parser("import", help="make an image from a root filesystem tarball")
    p.add_argument("tarball", metavar="ROOTFS.tar", help="the tarball, or - for stdin")
    p.add_argument("name", nargs="?", default=None, metavar="NAME[:TAG]")
    p = sub.add_parser("prune", help="delete content no image name reaches "
                                     "(-a: and every image no container uses)")
    p.add_argument("-a", "--all", action="store_true",
                   help="remove every image no container (running or stopped) uses, "
                        "as docker's: its names, then its content")
    p.add_argument("-f", "--force", action="store_true",
                   help="accepted as docker's: stackd's prune asks nothing")
    image_bootstrap.add_arguments(sub)


def run(args: argparse.Namespace) -> int:
    if args.subverb == "bootstrap":
        return image_bootstrap.run(args)
    import json

    from stackd.cli.humanize import decimal_size
    from stackd.cli.image_view import image_table
    from stackd.images import ImageStore
    from stackd.roots import Roots

    store = ImageStore(Roots.from_env().ensure())
    if args.subverb == "inspect":
        found = [store.get(i) for i in args.images]
        if args.format == "json":
            from stackd.cli.image_view import docker_image

            print(json.dumps([docker_image(img) for img in found], indent=4))
        elif args.format:
            from stackd.cli.goformat import render
            from stackd.cli.image_view import docker_image

            sys.stdout.write(render(args.format, [docker_image(img) for img in found]))
        else:
            print(json.dumps([img.model_dump(mode="json") for img in found], indent=2))
    elif args.subverb == "ls":
        images = store.list()
        print("\n".join(i.id[7:19] for i in images) if args.quiet else image_table(images))
    elif args.subverb == "rm":
        from stackd.cli.cmd_rmi import containers_here, untag
        from stackd.daemon.stack_images import layers_in_use

        views = containers_here()
        untag(store, args.images, views, force=args.force)
        store.prune(in_use=layers_in_use(views))
    elif args.subverb == "load":
        source = (args.input if args.input is not None
                  else _stdin("image load: the archive comes from stdin"))
        for img in store.load(source, None if args.input is not None else "stdin"):
            names = ", ".join(img.references) or "(no name)"
            print(f"Loaded image: {names} {img.id}")
    elif args.subverb == "save":
        if args.output:
            store.save(args.images, args.output)
        else:
            _save_to_stdout(store, args.images)
    elif args.subverb == "import":
        if args.tarball == "-":
            image = store.import_rootfs(_stdin("image import -: the tarball comes from stdin"),
                                        args.name, shown="stdin")
        else:
            image = store.import_rootfs(args.tarball, args.name)
        print(image.id)
    elif args.subverb == "prune":
        from stackd.cli.cmd_rmi import containers_here
        from stackd.daemon.stack_images import layers_in_use

        in_use = layers_in_use(containers_here())
        if args.all:
            for name in store.untag_unused(in_use):
                print(f"Untagged: {name}")
        report = store.prune(in_use=in_use)
        print(f"Deleted {report.blobs_removed} blobs and {report.snapshots_removed} layers; "
              f"reclaimed {decimal_size(report.bytes_freed)}")
    return 0


def _stdin(what: str) -> BinaryIO:
    """Stdin, read once by the loader, as `docker load` and `docker import -` read it."""
    if sys.stdin.isatty():
        raise UsageError(f"{what}, and stdin is a terminal",
                         hint="redirect a file in (`< image.tar`), or name it")
    return sys.stdin.buffer


def _save_to_stdout(store: ImageStore, images: list[str]) -> None:
    """`docker save IMAGE > file`: the archive on stdout, never onto a terminal."""
    if sys.stdout.isatty():
        raise UsageError("image save: an image archive is not written to a terminal",
                         hint="give -o FILE, or redirect stdout (`> image.tar`)")
    store.save(images, sys.stdout.buffer)  # streamed as it is made
    sys.stdout.buffer.flush()
