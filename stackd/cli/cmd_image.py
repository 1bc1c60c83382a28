"""`stackd image SUBVERB`: inspect, ls, rm, load, save, import, prune, pull, push, tag."""

from __future__ import annotations

import argparse

from stackd.cli import image_bootstrap

HELP = "Manage images: inspect, ls, rm, load, save, import, prune, bootstrap"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="subverb", required=True, metavar="SUBVERB")
    p = sub.add_parser("inspect", help="print images' details as JSON")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p = sub.add_parser("ls", help="list images")
    p.add_argument("-q", "--quiet", action="store_true")
    p = sub.add_parser("rm", help="remove images")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-f", "--force", action="store_true",
                   help="untag an image containers use (kept while they do)")
    p = sub.add_parser("load", help="load a docker save tarball or an OCI archive")
    p.add_argument("-i", "--input", required=True, metavar="FILE")
    p = sub.add_parser("save", help="save images to a tarball (docker save format)")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-o", "--output", required=True, metavar="FILE")
    p = sub.add_parser("import", help="make an image from a root filesystem tarball")
    p.add_argument("tarball", metavar="ROOTFS.tar")
    p.add_argument("name", nargs="?", default=None, metavar="NAME[:TAG]")
    p = sub.add_parser("prune", help="delete content no image name reaches")
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
        print(json.dumps([store.get(i).model_dump(mode="json") for i in args.images], indent=2))
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
        for img in store.load(args.input):
            names = ", ".join(img.references) or "(no name)"
            print(f"Loaded image: {names} {img.id}")
    elif args.subverb == "save":
        store.save(args.images, args.output)
    elif args.subverb == "import":
        print(store.import_rootfs(args.tarball, args.name).id)
    elif args.subverb == "prune":
        from stackd.cli.cmd_rmi import containers_here
        from stackd.daemon.stack_images import layers_in_use

        report = store.prune(in_use=layers_in_use(containers_here()))
        print(f"Deleted {report.blobs_removed} blobs and {report.snapshots_removed} layers; "
              f"reclaimed {decimal_size(report.bytes_freed)}")
    return 0
