"""`stackd up`: make the host run the stack (compose's flags)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

HELP = "Create and start the stack's containers (like docker compose up)"


def add_make_arguments(p: argparse.ArgumentParser, *, before: str) -> None:
    """The flags of how the containers are made, `up`'s and `create`'s alike."""
    b = p.add_mutually_exclusive_group()
    b.add_argument("--build", action="store_true", help=f"build images before {before}")
    b.add_argument("--no-build", action="store_true",
                   help="build no image, even one that is missing")
    p.add_argument("--pull", choices=["always", "missing", "never"], default=None,
                   help="pull images (default: each pull_policy)")
    p.add_argument("--remove-orphans", action="store_true",
                   help="remove containers of services not in the files")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--force-recreate", action="store_true",
                   help="recreate containers even if unchanged")
    g.add_argument("--no-recreate", action="store_true",
                   help="keep containers even if their config changed")
    p.add_argument("--quiet-pull", action="store_true", help="no progress lines for pulls")
    p.add_argument("--quiet-build", action="store_true",
                   help="no progress lines for builds")
    # Compose's "assume yes to prompts": stackd asks nothing, so there is nothing to say.
    p.add_argument("-y", "--yes", action="store_true", help=argparse.SUPPRESS)


def add_scale_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", action="append", default=[], metavar="SERVICE=N",
                   help="a service's replicas (repeatable)")
    p.add_argument("services", nargs="*", metavar="SERVICE")


def add_plan_arguments(p: argparse.ArgumentParser) -> None:
    """What decides the plan: `up`'s, and `plan`'s."""
    add_make_arguments(p, before="starting")
    p.add_argument("--no-deps", action="store_true", help="don't start linked services")
    p.add_argument("--always-recreate-deps", action="store_true",
                   help="recreate what the named services depend on, too")
    add_scale_arguments(p)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--detach", action="store_true",
                   help="return once up, not following the logs")
    add_plan_arguments(p)
    p.add_argument("--no-start", action="store_true",
                   help="create, start none (as `stackd create`)")
    p.add_argument("-t", "--timeout", type=int, default=None, metavar="SECONDS",
                   help="stop grace for containers replaced or stopped")
    p.add_argument("-V", "--renew-anon-volumes", action="store_true",
                   help="recreate, with new anonymous volumes")
    p.add_argument("--wait", action="store_true",
                   help="wait until running and healthy (implies -d)")
    p.add_argument("--wait-timeout", type=float, default=None, metavar="SECONDS",
                   help="--wait, failing after this long")
    p.add_argument("--attach", action="append", default=[], metavar="SERVICE",
                   help="follow only these services' output (repeatable)")
    p.add_argument("--no-attach", action="append", default=[], metavar="SERVICE",
                   help="do not follow these services' output (repeatable)")
    p.add_argument("--abort-on-container-exit", action="store_true",
                   help="stop all once one exits; its exit code")
    p.add_argument("--abort-on-container-failure", action="store_true",
                   help="stop all once one fails; its exit code")
    p.add_argument("--exit-code-from", metavar="SERVICE", default=None,
                   help="exit with its code; stop all once one exits")
    p.add_argument("--watch", action="store_true",
                   help="also follow develop.watch (as `stackd watch`)")
    p.add_argument("--no-color", action="store_true", help="followed logs without colour")
    p.add_argument("--no-log-prefix", action="store_true",
                   help="followed logs without container names")
    p.add_argument("--timestamps", action="store_true", help="followed logs with their times")
    p.add_argument("--attach-dependencies", action="store_true",
                   help="also follow what the named services depend on")


def parse_scale(items: list[str]) -> dict[str, int]:
    from stackd.errors import UsageError

    out: dict[str, int] = {}
    for item in items:
        name, sep, num = item.partition("=")
        if not sep or not name or not num.isdigit():
            raise UsageError(f"--scale {item!r} is not SERVICE=N", hint="e.g. --scale web=3")
        out[name] = int(num)
    return out


def make_options(args: argparse.Namespace) -> dict[str, Any]:
    """The apply options the flags of `add_make_arguments` and `add_scale_arguments` set."""
    from stackd.cli.composeenv import flag
    from stackd.errors import UsageError

    deps = getattr(args, "always_recreate_deps", False)
    if deps and args.no_recreate:
        raise UsageError("--always-recreate-deps and --no-recreate contradict each other",
                         hint="give one of them")
    return {
        "services": list(args.services),
        "remove_orphans": args.remove_orphans or flag("COMPOSE_REMOVE_ORPHANS"),
        "force_recreate": args.force_recreate, "no_recreate": args.no_recreate,
        "always_recreate_deps": deps,
        "build": args.build, "no_build": args.no_build, "pull": args.pull,
        "scale": parse_scale(args.scale), "parallel": parallel_limit(args),
    }


def parallel_limit(args: argparse.Namespace) -> int | None:
    """Compose's --parallel (else $COMPOSE_PARALLEL_LIMIT): a limit, or None for none."""
    import os

    from stackd.errors import UsageError

    given = getattr(args, "parallel", None)
    if given is None:
        text = os.environ.get("COMPOSE_PARALLEL_LIMIT", "").strip()
        if not text:
            return None
        try:
            given = int(text)
        except ValueError:
            raise UsageError(f"COMPOSE_PARALLEL_LIMIT={text!r} is not a number",
                             hint="a number of steps, or -1 for no limit") from None
    if given == -1:
        return None
    if given < 1:
        raise UsageError(f"--parallel {given}: at least 1, or -1 for no limit",
                         hint="e.g. --parallel 1 builds one image at a time")
    return given


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """`up`'s options (`plan` has no --wait or --no-start: false)."""
    wait = getattr(args, "wait", False) or getattr(args, "wait_timeout", None) is not None
    return {**make_options(args), "no_deps": args.no_deps, "wait": wait,
            "no_start": getattr(args, "no_start", False),
            "timeout": getattr(args, "timeout", None),
            "renew_anon_volumes": getattr(args, "renew_anon_volumes", False)}


def hidden_progress(args: argparse.Namespace) -> tuple[str, ...]:
    """The progress lines --quiet-pull and --quiet-build leave out, by their start."""
    return ((("pull: ",) if getattr(args, "quiet_pull", False) else ())
            + (("build: ",) if getattr(args, "quiet_build", False) else ()))


def apply(client: Any, body: dict[str, Any] | None, *, quiet: bool = False,
          path: str = "/v1/stacks/apply", params: dict[str, Any] | None = None,
          hidden: tuple[str, ...] = ()) -> tuple[str, bool]:
    """Stream an apply (or a rollback) with the live display; (project, ok)."""
    from stackd.cli.composeenv import flag
    from stackd.cli.progress_view import HeldErrors, ProgressView

    quiet_orphans = flag("COMPOSE_IGNORE_ORPHANS")
    project, ok, acted = "", False, False
    held = HeldErrors()
    with ProgressView() as view:
        for item in client.stream("POST", path, json_body=body, params=params):
            if "accepted" in item:
                project = item["accepted"]["project"]
            elif "event" in item:
                e = item["event"]
                if e["type"] == "progress":
                    acted = True
                    if hidden and str(e.get("message", "")).startswith(hidden):
                        continue
                    view.update(e.get("container") or "", e.get("state") or "",
                                e["message"], float(e.get("elapsed") or 0))
                elif held.hold(e) or (quiet_orphans and e.get("verb") == "warning" and str(
                        e["message"]).startswith("warning: orphan container")):
                    continue
                elif e["type"] in ("error", "rollback", "pause") or e.get("verb") == "warning":
                    view.note(f"{e['type']}: {e['message']}")
            elif "done" in item:
                d = item["done"]
                # A revision whose rolling update was rolled back or paused is not up.
                ok = d["result"] in ("ok", "requeue") and not str(
                    d.get("revision_outcome", "")).startswith(("rolled back", "paused"))
                held.flush(view, None if ok else d["error"])
                if not ok:
                    view.note(f"stackd: {project}: {d['error']}")
                if d.get("unplaced"):
                    view.note(f"stackd: {project}: the cluster cannot place it: "
                              f"{d['unplaced']}")
    if ok and not acted and not quiet:
        print(f"{project}: up to date, nothing to do", file=sys.stderr)
    return project, ok


def attached(args: argparse.Namespace) -> list[str] | None:
    """The services whose logs `up` follows (None: all of them): --attach's, else those
    named, else those without `attach: false`; less --no-attach's."""
    chosen = list(getattr(args, "attach", None) or args.services)
    skip = set(getattr(args, "no_attach", None) or ())
    files = getattr(args, "files", None)
    stdin = bool(files and "-" in files)  # read already: it went to the daemon
    if chosen and getattr(args, "attach_dependencies", False) and not stdin:
        from stackd.cli.main import load_stack
        from stackd.scheduler import build_graph, select_for_up
        from stackd.scheduler.from_stack import from_stack

        stack = load_stack(args, targeted=args.services)
        chosen = sorted(select_for_up(build_graph(from_stack(stack)), chosen))
    if chosen:
        return [s for s in chosen if s not in skip]
    if stdin:  # follow every service
        return None if not skip else _running_services(args, skip)
    from stackd.spec import LoadOptions, load

    # The daemon loaded these files too and has reported their warnings.
    stack = load(LoadOptions(
        files=files, project_name=getattr(args, "project_name", None),
        project_directory=getattr(args, "project_directory", None),
        env_files=getattr(args, "env_files", None),
        profiles=list(getattr(args, "profiles", None) or [])))
    quiet = {name for name, svc in stack.services.items() if not svc.attach} | skip
    if not quiet:
        return None
    return sorted(name for name in stack.services if name not in quiet)


def _running_services(args: argparse.Namespace, skip: set[str]) -> list[str]:
    from stackd.cli.client import Client
    from stackd.cli.stackref import project_of

    with Client() as client:
        rows = client.get("/v1/containers", project=project_of(args), all=True)
    return sorted({r["service"] for r in rows} - skip)


def _abort_of(args: argparse.Namespace) -> Any:
    """The --abort-on-…/--exit-code-from choice, checked against the other flags as
    Compose checks it; None without one."""
    from stackd.cli.abort import Abort
    from stackd.errors import UsageError

    flags = [f for f, given in (("--abort-on-container-exit", args.abort_on_container_exit),
                                ("--abort-on-container-failure",
                                 args.abort_on_container_failure),
                                ("--exit-code-from", args.exit_code_from)) if given]
    if not flags:
        return None
    if args.abort_on_container_exit and args.abort_on_container_failure:
        raise UsageError("--abort-on-container-exit and --abort-on-container-failure "
                         "contradict each other", hint="give one of them")
    for other, given in (("-d", args.detach), ("--wait", args.wait or args.wait_timeout),
                         ("--no-start", args.no_start)):
        if given:
            raise UsageError(f"{flags[0]} follows the stack until a container exits: "
                             f"not with {other}", hint=f"drop {other}")
    if args.exit_code_from and args.services and args.exit_code_from not in args.services:
        raise UsageError(f"--exit-code-from {args.exit_code_from}: not among the services "
                         "this up starts", hint=f"add {args.exit_code_from} to them")
    return Abort(on_failure_only=args.abort_on_container_failure,
                 code_from=args.exit_code_from)


def _watch_of(args: argparse.Namespace) -> Any:
    """With --watch: what starts following the develop.watch rules beside the logs
    (checked before anything starts); else None."""
    if not getattr(args, "watch", False):
        return None
    from stackd.errors import UsageError

    if args.detach or args.wait or args.no_start:
        raise UsageError("--watch follows the stack as up does attached: not with -d, "
                         "--wait or --no-start", hint="or run `stackd watch` beside it")
    from stackd.cli.cmd_watch import watcher_for

    return watcher_for(args)


def run(args: argparse.Namespace) -> int:
    import time

    from stackd.cli.client import Client
    from stackd.cli.stackref import source_from_args

    abort = _abort_of(args)
    watch = _watch_of(args)
    if abort is not None and abort.code_from is not None:  # before anything starts
        from stackd.cli.main import load_stack
        from stackd.scheduler.order import check_named

        check_named(load_stack(args, targeted=args.services).services, [abort.code_from])
    body = {"source": source_from_args(args, args.services),
            "options": options_from_args(args)}
    since = time.time()
    with Client() as client:
        project, ok = apply(client, body, hidden=hidden_progress(args))
        if not ok:
            return 1
        if args.no_start:
            return 0
        if args.wait or args.wait_timeout is not None:
            from stackd.cli.wait import wait_ready

            wait_ready(client, project, list(args.services), args.wait_timeout)
            return 0
        if args.detach:
            return 0
        from stackd.cli.cmd_logs import follow_project

        # How followed lines look, as `logs` takes it.
        shown: dict[str, Any] = {"timestamps": args.timestamps,
                                 "color": False if args.no_color else None,
                                 "prefix": not args.no_log_prefix}
        if watch is not None:
            watch(project)
        services = attached(args)
        if services == [] and abort is None:
            print(f"{project}: every service has attach: false; not following logs",
                  file=sys.stderr)
            return 0
        try:
            if abort is not None:
                from stackd.cli.abort import follow_until_exit

                return follow_until_exit(
                    client, project, list(args.services) or None, since, abort,
                    follow=lambda on_line: follow_project(
                        Client(), project, services=services or [], tail=None,
                        follow=True, since=since, on_line=on_line, **shown),
                    stop=lambda: stop_project(project, [], args.timeout))
            from stackd.cli.followed import follow_until_ended

            # This run's output, as Compose attaches: not what earlier runs wrote.
            return follow_until_ended(
                client, project, list(args.services) or services,
                follow=lambda on_line: follow_project(
                    Client(), project, services=services or [], tail=None, follow=True,
                    since=since, on_line=on_line, **shown))
        except KeyboardInterrupt:
            # Compose's Ctrl-C: stop, not down — the containers stay (`ps -a`, `start`).
            print(f"\nstopping {project} (Ctrl-C)…", file=sys.stderr)
            stop_project(project, args.services, args.timeout)
            return 130
    return 0


def stop_project(project: str, services: list[str], timeout: int | None = None) -> None:
    """Stop the stack's containers through its controller, dependents first; held by
    the daemon as a user's stop, so no restart policy undoes it."""
    from stackd.cli.client import Client
    from stackd.cli.cmd_lifecycle import lifecycle

    with Client() as client:
        lifecycle(client, project, "stop", {"services": list(services), "timeout": timeout})
