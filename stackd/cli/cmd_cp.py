"""`stackd cp SERVICE:SRC DEST` / `stackd cp SRC SERVICE:DEST`: copy files between a
service container and the host (compose's cp). Without a stack file in play, the name
before the colon is a container's name or id (docker's cp). `-` for DEST writes a tar
of SRC to stdout; `-` for SRC unpacks a tar from stdin into the directory DEST.

Paths in the container are resolved inside its root, never on the host
(stackd.runtime.copy): an image's `/etc -> /<host dir>` leads to that directory in
the container."""

from __future__ import annotations

import argparse
import re

HELP = "Copy files between a service container and the host"

# "svc:/path", "svc:path"; a host path with a colon is written ./a:b, as with docker.
_REMOTE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]*):(.*)$")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", type=int, default=1, help="which replica (default 1)")
    p.add_argument("-L", "--follow-link", action="store_true",
                   help="copy what a source link in the container points at")
    p.add_argument("-a", "--archive", action="store_true",
                   help="keep each file's owner (uid:gid); else root's")
    p.add_argument("src", metavar="SERVICE:SRC_PATH | SRC_PATH | -")
    p.add_argument("dest", metavar="DEST_PATH | - | SERVICE:DEST_PATH")


def split_remote(arg: str) -> tuple[str, str] | None:
    """(name, path) for "name:path", None for a host path. Pure."""
    m = _REMOTE.match(arg)
    return (m.group(1), m.group(2) or "/") if m else None


def run(args: argparse.Namespace) -> int:
    import os

    from stackd.cli.cmd_run import stack_in_play
    from stackd.cli.containers import any_id
    from stackd.daemon.host_verbs import copy
    from stackd.errors import UsageError
    from stackd.roots import Roots

    src, dest = split_remote(args.src), split_remote(args.dest)
    if (src is None) == (dest is None):
        raise UsageError("cp copies between a container and the host: exactly one side "
                         "is SERVICE:PATH", hint="e.g. stackd cp web:/etc/hostname ./hostname")
    name, path = src or dest  # type: ignore[misc]
    if stack_in_play(args):
        from stackd.cli.stackref import project_of

        container = f"{project_of(args)}-{name}-{args.index}"
        hint = "see `stackd ps -a`"
    else:
        container, hint = name, "see `stackd container ls -a`"
    # Docker's cp: a stopped container's files too (a test run's report, a config put
    # into a created one before its start).
    cid = any_id(container, hint=hint)
    if (args.dest if src is not None else args.src) == "-":
        import sys

        from stackd.daemon.host_verbs import copy_tar

        # `-`: a tar stream on stdout (of SRC_PATH) or from stdin (into DEST_PATH).
        copy_tar(Roots.from_env(), cid, path=path, from_container=src is not None,
                 stream=sys.stdout.buffer if src is not None else sys.stdin.buffer,
                 follow=args.follow_link, owners=args.archive)
        return 0
    if src is not None:
        _refuse_special(args.dest)
        copy(Roots.from_env(), cid, from_container=True, src=path,
             dest=os.path.abspath(args.dest), follow=args.follow_link, owners=args.archive)
    else:
        copy(Roots.from_env(), cid, from_container=False, src=os.path.abspath(args.src),
             dest=path, owners=args.archive)
    return 0


def _refuse_special(dest: str) -> None:
    """A host destination that is there must be a file or a directory: copying onto
    /dev/zero wrote into the device and set its mode to the container file's (0644 for
    a node every user must write)."""
    import os
    import stat

    from stackd.errors import UsageError

    try:
        mode = os.stat(dest).st_mode
    except OSError:
        return  # not there (made by the copy), or said by it
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise UsageError(f"cp: {dest} is a device, a pipe or a socket, not a file or a "
                         "directory", hint="copy to a file or a directory, or to - for a "
                         "tar stream on stdout")
