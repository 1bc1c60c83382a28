"""`stackd build`: build images from Dockerfiles, with a layer cache.

Two shapes, as `docker build` and `docker compose build`:

    stackd build [-t NAME] DIR           DIR is a build context (has a Dockerfile)
    stackd [-f stack.yaml] build [SVC…]  every service of the stack with a `build:`
                                         section (or the ones named), tagged as
                                         `up` will look for them
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HELP = "Build an image from a Dockerfile"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("targets", nargs="*", metavar="CONTEXT|SERVICE",
                        help="a build context dir; or service names of the stack "
                             "(none: every service with a build section)")
    parser.add_argument("-f", "--file", dest="dockerfile", default=None,
                        help="Dockerfile path, relative to the context (default Dockerfile)")
    parser.add_argument("-t", "--tag", action="append", default=[], metavar="NAME[:TAG]",
                        help="name the result (repeatable)")
    parser.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="set a build ARG (repeatable; KEY alone takes it from the env)")
    parser.add_argument("--target", default=None, help="build this stage, not the last")
    parser.add_argument("--no-cache", action="store_true", help="ignore the build cache")
    parser.add_argument("--pull", action="store_true",
                        help="pull FROM images again even if they are in the store")
    parser.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                        help="add a label to the image (repeatable)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the image id")
    parser.add_argument("--with-dependencies", action="store_true",
                        help="also build what the named services depend on")
    parser.add_argument("--secret", action="append", default=[], metavar="id=ID,src=FILE",
                        help="a file for RUN --mount=type=secret,id=ID (in no layer)")
    parser.add_argument("--push", action="store_true",
                        help="push each built image to its registry (its -t / image: names)")
    parser.add_argument("--build-context", action="append", default=[],
                        metavar="NAME=DIR|docker-image://IMAGE",
                        help="a named context for COPY --from=NAME and FROM NAME (repeatable)")
    parser.add_argument("--network", choices=("default", "none"), default=None,
                        help="what RUN steps are on: the root's default network (default) "
                             "or none (loopback only); a RUN's own --network wins")


def parse_build_args(items: list[str]) -> dict[str, str]:
    import os

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            if key not in os.environ:
                continue
            value = os.environ[key]
        out[key] = value
    return out


def parse_contexts(items: list[str]) -> dict[str, str]:
    """--build-context NAME=DIR or NAME=docker-image://IMAGE, as buildx takes it; a
    directory is made absolute here (against the current directory)."""
    import os

    from stackd.errors import UsageError

    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise UsageError(f"--build-context {item!r} is not NAME=VALUE",
                             hint="e.g. --build-context shared=../shared")
        if "://" in value and not value.startswith("docker-image://"):
            raise UsageError(f"--build-context {name}: {value.split('://')[0]}:// is not "
                             "supported yet", hint="give a directory, or docker-image://IMAGE")
        out[name] = value if "://" in value else os.path.abspath(value)
    return out


def parse_secrets(items: list[str]) -> dict[str, Path]:
    """`--secret id=ID,src=FILE` (docker buildx's form; `source=` too)."""
    from stackd.errors import UsageError

    out: dict[str, Path] = {}
    for item in items:
        fields = dict(p.partition("=")[::2] for p in item.split(","))
        sid, src = fields.get("id", ""), fields.get("src") or fields.get("source", "")
        if not sid or not src or set(fields) - {"id", "src", "source", "type"}:
            raise UsageError(f"--secret {item!r} is not id=ID,src=FILE",
                             hint="e.g. --secret id=token,src=./token.txt")
        path = Path(src).absolute()
        if not path.is_file():
            raise UsageError(f"--secret {item!r}: {src} is not a file",
                             hint="give the path of a readable file")
        out[sid] = path
    return out


def run(args: argparse.Namespace) -> int:
    import functools

    import trio

    from stackd.cli.buildnet import DaemonRunNetwork
    from stackd.cli.image_view import TransferPrinter
    from stackd.images import ImageStore
    from stackd.roots import Roots

    roots = Roots.from_env().ensure()
    store = ImageStore(roots)
    progress = None if args.quiet else TransferPrinter()
    network = DaemonRunNetwork(roots)
    jobs: list[Job]
    if len(args.targets) == 1 and _is_directory(args, args.targets[0]):
        jobs = [Job(args.targets[0], args.dockerfile or "Dockerfile", args.tag,
                    parse_build_args(args.build_arg), args.target,
                    push_tags=tuple(args.tag))]
    else:
        jobs = _stack_jobs(args)
    for job in jobs:
        image = trio.run(functools.partial(
            store.build, job.context, dockerfile=job.dockerfile, tag=job.tags,
            build_args=job.build_args, target=job.target, progress=progress,
            no_cache=args.no_cache, labels={**job.labels, **parse_build_args(args.label)},
            pull=job.pull or args.pull, dockerfile_text=job.dockerfile_inline,
            secrets={**job.secrets, **parse_secrets(args.secret)}, network=network,
            network_mode=args.network or job.network_mode, extra_hosts=job.extra_hosts,
            shm_size=job.shm_size, ulimits=job.ulimits,
            contexts={**job.contexts, **parse_contexts(args.build_context)}))
        print(image.id if args.quiet else f"Built {image.id}"
              + (f" as {', '.join(image.references)}" if image.references else ""))
        if args.push:
            _push(store, job, progress, args.quiet)
    return 0


def _is_directory(args: argparse.Namespace, target: str) -> bool:
    """Docker's `build DIR`, not Compose's `build SERVICE`: beside a stack file a plain
    name is a service when the stack has one by that name with a build section (the
    service `app` whose context is ./app); a path (`.`, `./app`) is always a directory."""
    import os

    if not os.path.isdir(target):
        return False
    if os.sep in target or target in (".", ".."):
        return True
    from stackd.cli.cmd_run import stack_in_play

    if not stack_in_play(args):
        return True
    from stackd.cli.main import load_stack

    svc = load_stack(args, targeted=[target]).services.get(target)
    return svc is None or svc.build is None


def _push(store: Any, job: Job, progress: Any, quiet: bool) -> None:
    """`build --push`: the names the build gave that name a registry's repository."""
    import trio

    from stackd.errors import UsageError

    if not job.push_tags:
        raise UsageError(f"--push: the build of {job.context} has no name to push under",
                         hint="name it: -t registry.example/app:1 (or image: in the stack)")
    for tag in job.push_tags:
        digest = trio.run(store.push, tag, None, progress)
        print(digest if quiet else f"{tag}: digest: {digest}")


@dataclass(frozen=True)
class Job:
    """One image to build, as the command line or a service's `build:` says."""

    context: str
    dockerfile: str
    tags: list[str]
    build_args: dict[str, str]
    target: str | None
    labels: dict[str, str] = field(default_factory=dict)
    pull: bool = False
    dockerfile_inline: str | None = None
    secrets: dict[str, Path] = field(default_factory=dict)
    network_mode: str | None = None
    extra_hosts: tuple[str, ...] = ()
    shm_size: int | None = None
    ulimits: tuple[tuple[str, int, int], ...] = ()
    # What `--push` pushes: the names given (-t, build.tags) and the service's own
    # `image:`, never the name stackd makes up for a service without one.
    push_tags: tuple[str, ...] = ()
    contexts: dict[str, str] = field(default_factory=dict)  # build.additional_contexts


def _stack_jobs(args: argparse.Namespace) -> list[Job]:
    """One build per service with `build:` (all, or those named), tagged as `up` expects."""
    import os

    from stackd.errors import UsageError
    from stackd.spec import LoadOptions, load
    from stackd.spec.buildsecrets import build_secrets
    from stackd.spec.image_names import image_ref

    stack = load(LoadOptions(
        files=getattr(args, "files", None), project_name=getattr(args, "project_name", None),
        project_directory=getattr(args, "project_directory", None),
        env_files=getattr(args, "env_files", None), profiles=getattr(args, "profiles", None)))
    buildable = {n: s for n, s in sorted(stack.services.items()) if s.build is not None}
    deps = getattr(args, "with_dependencies", False) and bool(args.targets)
    # With --with-dependencies a named service need not build itself: its needs may.
    known = stack.services if deps else buildable
    unknown = [t for t in args.targets if t not in known]
    if unknown:
        raise UsageError(
            f"{', '.join(unknown)}: not a directory, nor a service of {stack.name} with a "
            "build section", hint="services with one: " + (", ".join(buildable) or "none"))
    wanted = set(args.targets)
    if deps:
        from stackd.scheduler import build_graph, select_for_up
        from stackd.scheduler.from_stack import from_stack

        wanted = set(select_for_up(build_graph(from_stack(stack)), args.targets))
    jobs = []
    for name, svc in buildable.items():
        if args.targets and name not in wanted:
            continue
        b = svc.build
        assert b is not None
        build_args = {k: v if v is not None else os.environ.get(k, "")
                      for k, v in b.args.items()}
        build_args.update(parse_build_args(args.build_arg))
        tags = [image_ref(stack, name, svc), *b.tags, *args.tag]
        jobs.append(Job(b.context, args.dockerfile or b.dockerfile or "Dockerfile", tags,
                        build_args, args.target or b.target, dict(b.labels), b.pull,
                        None if args.dockerfile else b.dockerfile_inline,
                        build_secrets(stack, name), b.network, tuple(b.extra_hosts),
                        int(b.shm_size) if b.shm_size else None,
                        tuple((k, u.soft, u.hard) for k, u in sorted(b.ulimits.items())),
                        tuple(dict.fromkeys([*([svc.image] if svc.image else []), *b.tags,
                                             *args.tag])), dict(b.additional_contexts)))
    return jobs
