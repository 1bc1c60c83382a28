"""`stackd image bootstrap debian`: a base image from Debian's packages, offline."""

from __future__ import annotations

import argparse

HELP = "a base image from Debian packages (mmdebstrap), cached"
EPILOG = """example:
  stackd image bootstrap debian --include python3-flask,redis-server -t base:1

The same suite and package set again reuses the image made before (its label
io.stackd.bootstrap names what built it); --rebuild makes it afresh."""


def add_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bootstrap", help=HELP, description=HELP, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("distro", choices=["debian"], help="the distribution (debian)")
    p.add_argument("--suite", default=None,
                   help="Debian suite/codename (default: bookworm)")
    p.add_argument("--include", action="append", default=[], metavar="PKGS",
                   help="packages to install, comma- or space-separated (repeatable)")
    p.add_argument("-t", "--tag", default=None, metavar="NAME:TAG",
                   help="the image's name (default: debian-SUITE:<hash of the packages>)")
    p.add_argument("--mirror", default=None, metavar="URL",
                   help="Debian archive (default: the host's apt sources, else "
                        "deb.debian.org)")
    p.add_argument("--rebuild", action="store_true",
                   help="build even if an image of this package set exists")


def run(args: argparse.Namespace) -> int:
    import sys

    from stackd.images import ImageStore
    from stackd.images.bootstrap import (
        DEFAULT_MIRROR,
        DEFAULT_SUITE,
        BootstrapRequest,
        bootstrap,
        host_mirror,
        read_host_sources,
    )
    from stackd.roots import Roots

    mirror = args.mirror or host_mirror(read_host_sources()) or DEFAULT_MIRROR
    request = BootstrapRequest.make(args.distro, args.suite or DEFAULT_SUITE, args.include,
                                    mirror)
    if args.tag is not None:
        from stackd.images.reference import parse

        parse(args.tag)  # a bad name is refused before a minute of mmdebstrap
    store = ImageStore(Roots.from_env().ensure())
    name = args.tag or request.default_name()
    image_id, reused = bootstrap(
        store, request, name, rebuild=args.rebuild,
        building=lambda: print(f"building {request.built_by} from {mirror} with mmdebstrap "
                               "(a minute or so)", file=sys.stderr, flush=True))
    print(f"{'Reused' if reused else 'Built'} {name} {image_id}")
    return 0
