"""`stackd config`: print the fully resolved stack, like `docker compose config`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

HELP = "Print the resolved stack (like docker compose config)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("yaml", "json"), default=None,
                        help="output format (default: yaml; --variables: a table)")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--services", dest="services_only", action="store_true",
                      help="print the service names")
    what.add_argument("--volumes", action="store_true", help="print the volume names")
    what.add_argument("--profiles", dest="list_profiles", action="store_true",
                      help="print the profile names the services use")
    what.add_argument("--images", action="store_true",
                      help="print the image each service runs (as up names a built one)")
    what.add_argument("--networks", action="store_true", help="print the network names")
    what.add_argument("--environment", action="store_true",
                      help="print the variables interpolation used (KEY=VALUE)")
    what.add_argument("--variables", action="store_true",
                      help="print the variables the files use, their defaults")
    what.add_argument("--hash", default=None, metavar="SERVICES",
                      help="print each service's definition hash ('*': all; or a,b)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="only check the stack; print nothing when it is valid")
    parser.add_argument("-o", "--output", default=None, metavar="FILE",
                        help="write the resolved stack to FILE instead of the screen")
    parser.add_argument("services", nargs="*", metavar="SERVICE",
                        help="only these services and those they depend on")


def run(args: argparse.Namespace) -> int:
    from stackd.cli.main import load_stack
    from stackd.spec.render import to_json, to_yaml

    if args.environment or args.variables:
        values, uses = _interpolation(args)
        if args.environment:
            _write(args.output, "".join(f"{k}={v}\n" for k, v in sorted(values.items())))
        else:
            _write(args.output, _variables(uses, args.format))
        return 0

    hashed = _hashed(args.hash)
    # Listing profiles means looking at every service, enabled or not; a service named
    # (to print or to hash) is enabled with its profiles, as `up` would.
    stack = load_stack(args, all_profiles=args.list_profiles,
                       targeted=[*args.services, *(hashed or ())] or None)
    # What up would refuse before it starts anything, Compose's config refuses too:
    # a dependency cycle, or one on a service that is not there.
    from stackd.scheduler import build_graph
    from stackd.scheduler.from_stack import from_stack
    from stackd.scheduler.order import check_named, select_for_up
    from stackd.spec.narrow import definition_hash, narrowed

    graph = build_graph(from_stack(stack))
    check_named(stack.services, [*args.services, *(hashed or ())])
    # Only what would run: the named services with their dependencies (all without
    # names), and the networks, volumes, configs and secrets those use.
    stack = narrowed(stack, select_for_up(graph, args.services).nodes
                     if args.services else None)
    if args.quiet:
        return 0
    if hashed is not None:
        names = sorted(hashed or stack.services)
        _write(args.output, "".join(f"{n} {definition_hash(stack.services[n])}\n"
                                    for n in names))
        return 0
    if args.services_only:
        names = sorted(stack.services)
    elif args.volumes:
        names = sorted(stack.volumes)
    elif args.list_profiles:
        names = sorted({p for s in stack.services.values() for p in s.profiles})
    elif args.images:
        from stackd.spec.image_names import image_ref

        names = sorted({image_ref(stack, n, s) for n, s in stack.services.items()})
    elif args.networks:
        names = sorted(stack.networks)
    else:
        _write(args.output, to_json(stack) if args.format == "json" else to_yaml(stack))
        return 0
    _write(args.output, "".join(f"{name}\n" for name in names))
    return 0


def _hashed(value: str | None) -> tuple[str, ...] | None:
    """`--hash`'s services: () for '*' (every one), None when not asked."""
    if value is None:
        return None
    if value.strip() == "*":
        return ()
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    if not names:
        from stackd.errors import UsageError

        raise UsageError("--hash needs service names, or '*' for all of them",
                         hint="e.g. stackd config --hash web,db")
    return names


def _interpolation(args: argparse.Namespace) -> tuple[dict[str, str], tuple[Any, ...]]:
    from stackd.spec import LoadOptions
    from stackd.spec.loader import variables

    return variables(LoadOptions(
        files=getattr(args, "files", None), project_name=getattr(args, "project_name", None),
        project_directory=getattr(args, "project_directory", None),
        env_files=getattr(args, "env_files", None)))


def _variables(uses: tuple[Any, ...], fmt: str | None) -> str:
    """Compose's `config --variables`: a table, or JSON/YAML keyed by name."""
    if fmt is None:
        from stackd.cli.table import render

        return render(("NAME", "REQUIRED", "DEFAULT VALUE", "ALTERNATE VALUE"),
                      [(u.name, str(u.required).lower(), u.default or "", u.alternate or "")
                       for u in uses]) + "\n"
    data = {u.name: {"name": u.name, "required": u.required, "default": u.default,
                     "alternate": u.alternate} for u in uses}
    if fmt == "json":
        import json

        return json.dumps(data, indent=2) + "\n"
    import yaml

    return str(yaml.safe_dump(data, sort_keys=True))


def _write(output: str | None, text: str) -> None:
    if output is None:
        sys.stdout.write(text)
    else:
        from stackd.outfile import replaced

        with replaced(output, "config -o") as out:
            out.write(text.encode())
