"""Entry point of the `stackd` command.

Start-up must stay fast (`stackd --help` well under 150 ms), so this module imports
only argparse and the verb table; the module behind a verb is imported once that verb
is chosen. Each verb module exposes

    HELP: str                                   one line for `stackd --help`
    def add_arguments(parser) -> None           its own flags and positionals
    def run(args) -> int                        the exit code

and is listed in `VERBS` below. Compose's global options come before the verb.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from stackd.spec.model import Stack

# verb → (module, one-line help). Keep sorted by how a user meets them.
VERBS: dict[str, tuple[str, str]] = {
    "config": ("stackd.cli.cmd_config", "Print the resolved stack (like docker compose config)"),
    "graph": ("stackd.cli.cmd_graph", "Show the services' dependency graph (text, dot, mermaid)"),
    "up": ("stackd.cli.cmd_up", "Create and start the stack's containers"),
    "create": ("stackd.cli.cmd_create", "Create the stack's containers, start none"),
    "down": ("stackd.cli.cmd_down", "Stop and remove the stack (-v: and its volumes)"),
    "ps": ("stackd.cli.cmd_ps", "List the stack's containers"),
    "ls": ("stackd.cli.cmd_ls", "List stacks: their status and stack files"),
    "logs": ("stackd.cli.cmd_logs", "Show (-f: follow) the stack's logs"),
    "exec": ("stackd.cli.cmd_exec", "Run a command in a running service container"),
    "attach": ("stackd.cli.cmd_attach", "Follow a service container's output until it exits"),
    "cp": ("stackd.cli.cmd_cp", "Copy files between a service container and the host"),
    "run": ("stackd.cli.cmd_run", "Run a one-off container of a service, or of an image"),
    "plan": ("stackd.cli.cmd_plan", "Show how the host differs from the files"),
    "history": ("stackd.cli.cmd_history", "List the stack's applied revisions"),
    "rollback": ("stackd.cli.cmd_rollback",
                 "Apply the revision before the current one again (one service of it)"),
    "gitops": ("stackd.cli.cmd_gitops", "Follow a git repository: apply each new commit"),
    "resume": ("stackd.cli.cmd_resume", "Resume the stack's paused rolling update"),
    "watch": ("stackd.cli.cmd_watch",
              "Sync, restart or rebuild services as their files change (develop.watch)"),
    "events": ("stackd.cli.cmd_events", "Stream the daemon's events"),
    "start": ("stackd.cli.cmd_lifecycle", "Start the stack's stopped containers"),
    "stop": ("stackd.cli.cmd_lifecycle", "Stop the stack's containers (keep them)"),
    "restart": ("stackd.cli.cmd_lifecycle", "Restart the stack's containers"),
    "kill": ("stackd.cli.cmd_lifecycle", "Send a signal to the stack's containers"),
    "rm": ("stackd.cli.cmd_lifecycle", "Remove the stack's stopped containers"),
    "pause": ("stackd.cli.cmd_pause", "Pause (freeze) the stack's running containers"),
    "unpause": ("stackd.cli.cmd_pause", "Unpause (thaw) the stack's paused containers"),
    "stats": ("stackd.cli.cmd_stats", "Live CPU, memory and process counts of containers"),
    "top": ("stackd.cli.cmd_lifecycle", "Processes and usage of the stack's containers"),
    "port": ("stackd.cli.cmd_port",
             "Print the host address a service's container port is published on"),
    "wait": ("stackd.cli.cmd_lifecycle", "Wait for the stack's containers to exit"),
    "scale": ("stackd.cli.cmd_scale", "Set the number of replicas of services"),
    "daemon": ("stackd.cli.cmd_daemon", "Run the daemon (foreground), or: daemon status|stop"),
    "pull": ("stackd.cli.cmd_pull", "Pull an image from a registry"),
    "push": ("stackd.cli.cmd_push", "Push an image to a registry"),
    "build": ("stackd.cli.cmd_build", "Build an image from a Dockerfile"),
    "builder": ("stackd.cli.cmd_builder", "Manage the build cache: prune"),
    "images": ("stackd.cli.cmd_images", "List images in the local store"),
    "rmi": ("stackd.cli.cmd_rmi", "Remove images"),
    "tag": ("stackd.cli.cmd_tag", "Give an image another name"),
    "commit": ("stackd.cli.cmd_commit", "Make an image from a service container's changes"),
    "export": ("stackd.cli.cmd_export",
               "Write a service container's file tree as a tar archive"),
    "login": ("stackd.cli.cmd_login", "Log in to a registry"),
    "image": ("stackd.cli.cmd_image",
              "Manage images: inspect, ls, rm, load, save, import, prune, bootstrap"),
    "network": ("stackd.cli.cmd_network", "Manage networks: ls, inspect, rm, prune"),
    "inspect": ("stackd.cli.cmd_inspect",
                "Show containers, images, networks or volumes under Docker's field names"),
    "container": ("stackd.cli.cmd_container",
                  "Single containers by name or id, with docker's verbs: ls, inspect, rm, "
                  "exec…"),
    "volume": ("stackd.cli.cmd_volume", "Manage volumes: ls, inspect, create, rm, prune"),
    "volumes": ("stackd.cli.cmd_volumes", "List the stack's volumes (Compose's `volumes`)"),
    "system": ("stackd.cli.cmd_system",
               "Disk usage (df), the host and root (info), removing what nothing uses"),
    "ui": ("stackd.cli.cmd_ui", "Serve the web console (live stacks, containers, events)"),
    "node": ("stackd.cli.cmd_node", "Cluster nodes: join, ls, inspect, drain, active, rm, cert"),
    "version": ("stackd.cli.cmd_version", "Show the version of the stackd client and daemon"),
}

# The verbs that read the stack files. They take -f/--file after the verb too
# (`stackd up -f stack.yaml`), as well as before it as Compose's global option — where
# the verb's own flags leave it free: `logs -f` follows and `rm -f` forces, as in
# Compose, so there only --file names a stack file; build's -f is its Dockerfile.
STACK_VERBS = frozenset({
    "config", "graph", "up", "create", "down", "ps", "logs", "exec", "attach", "cp", "run",
    "plan", "history", "rollback", "resume", "watch", "events", "start", "stop", "restart",
    "kill", "rm", "pause", "unpause", "stats", "top", "port", "wait", "scale", "pull",
    "push", "images", "volumes", "commit", "export",
})


def global_parser() -> argparse.ArgumentParser:
    import argparse

    from stackd import __version__
    from stackd.cli.helpformat import GlobalParser, ScreenHelpFormatter

    p = GlobalParser(
        prog="stackd",
        description="Declarative multi-container stacks from Compose files.",
        formatter_class=ScreenHelpFormatter,
    )
    p.verbs = list(VERBS)
    p.add_argument("--version", action="version", version=f"stackd {__version__}")
    p.add_argument("-f", "--file", dest="files", action="append", default=None,
                   metavar="FILE", help="stack file (repeatable; '-' reads stdin)")
    p.add_argument("-p", "--project-name", dest="project_name", default=None, metavar="NAME",
                   help="project name (default: top-level name: or the directory name)")
    p.add_argument("--project-directory", dest="project_directory", default=None,
                   metavar="DIR",
                   help="base directory for relative paths and .env")
    p.add_argument("--env-file", dest="env_files", action="append", default=None,
                   metavar="FILE", help="env file(s) replacing .env (repeatable)")
    p.add_argument("--profile", dest="profiles", action="append", default=None,
                   help="enable a profile (repeatable; also STACKD_PROFILES)")
    p.add_argument("-H", "--host", default=None, metavar="URL",
                   help="the daemon: tcp://HOST:PORT, a cluster member over mutual TLS "
                        "(identity: --tlscacert/--tlscert/--tlskey FILE, default this "
                        "node's), or unix:///PATH (also STACKD_HOST)")
    p.add_argument("--ansi", default=None, choices=("auto", "never", "always"),
                   metavar="WHEN", help="auto|never|always: colours, redrawing")
    p.add_argument("--parallel", type=int, default=None, metavar="N",
                   help="at most N steps at once (-1: no limit)")
    p.add_argument("--dry-run", action="store_true",
                   help="up, create: show the plan, do nothing")
    p.add_argument("--progress", default=None,
                   choices=("auto", "tty", "plain", "json", "quiet"), metavar="MODE",
                   help="auto|tty|plain|json|quiet")
    for flag in ("--tlscacert", "--tlscert", "--tlskey"):  # explained in --host's help
        p.add_argument(flag, default=None, metavar="FILE", help=argparse.SUPPRESS)
    p.add_argument("verb", nargs="?", choices=list(VERBS), metavar="VERB")
    p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["ps"] and _display_env_ok():
        # The one verb whose speed is a goal (as fast as `podman ps`): plain forms skip
        # argparse, whose import and parser building alone take longer than that.
        from stackd.cli import cmd_ps

        fast = cmd_ps.fast_args(argv[1:])
        if fast is not None:
            fast.verb = "ps"
            return _run(cmd_ps.run, fast)
    import argparse
    import importlib

    gp = global_parser()
    gargs = gp.parse_args(argv)
    if gargs.verb is None:
        gp.print_help()
        return 2
    from stackd.cli import display

    try:
        display.configure(gargs.ansi, gargs.progress)
    except Exception as exc:  # a bad $COMPOSE_ANSI: said as any usage error
        return _run(_raise, exc)
    # The transport is the Client's to choose, wherever a verb makes one: by environment.
    for value, name in ((gargs.host, "STACKD_HOST"), (gargs.tlscacert, "STACKD_TLSCACERT"),
                        (gargs.tlscert, "STACKD_TLSCERT"), (gargs.tlskey, "STACKD_TLSKEY")):
        if value is not None:
            os.environ[name] = value
    if os.environ.get("STACKD_HOST"):
        from stackd.cli import remote

        try:
            remote.check_verb(gargs.verb)
        except Exception as exc:
            return _run(_raise, exc)
    module_name, help_line = VERBS[gargs.verb]
    module = importlib.import_module(module_name)
    from stackd.cli.helpformat import ScreenHelpFormatter, finish

    vp = argparse.ArgumentParser(prog=f"stackd {gargs.verb}", description=help_line,
                                 formatter_class=ScreenHelpFormatter)
    if module.add_arguments.__code__.co_argcount == 2:
        module.add_arguments(vp, gargs.verb)  # one module for several verbs
    else:
        module.add_arguments(vp)

    if gargs.verb in STACK_VERBS:
        _accept_files_after(vp)
    finish(vp, gargs.verb, module)
    args = vp.parse_args(gargs.rest)
    files_after = vars(args).pop("files_after", None)
    for key, value in vars(gargs).items():
        if key not in ("verb", "rest") and not hasattr(args, key):
            setattr(args, key, value)
    if files_after:
        args.files = [*(args.files or []), *files_after]
    args.verb = gargs.verb
    if getattr(args, "env_files", None) is None:
        from stackd.cli.composeenv import env_files

        args.env_files = env_files()
    if gargs.dry_run:
        return _run(_dry_run, args)
    return _run(module.run, args)


def _accept_files_after(parser: argparse.ArgumentParser) -> None:
    """-f/--file FILE after a stack verb, added to those before it; only the option
    strings the verb leaves free."""
    flags = [f for f in ("-f", "--file") if f not in parser._option_string_actions]
    if flags:
        parser.add_argument(*flags, dest="files_after", action="append", default=None,
                            metavar="FILE",
                            help="stack file (repeatable), as before the verb")


def _dry_run(args: argparse.Namespace) -> int:
    """Compose's --dry-run: for up and create, the plan their flags give, changing
    nothing (`stackd plan`); refused by name for every other verb."""
    from stackd.errors import UsageError

    if args.verb not in ("up", "create"):
        raise UsageError(f"--dry-run of {args.verb} is not supported yet",
                         hint="it is for up and create (what `stackd plan` shows); "
                              f"run {args.verb} without it")
    from stackd.cli import cmd_plan

    args.format, args.exit_code, args.as_up = "text", False, args.verb == "up"
    if args.verb == "create":
        args.no_deps, args.no_start = False, True
    return cmd_plan.run(args)


def _display_env_ok() -> bool:
    """$COMPOSE_ANSI and $COMPOSE_PROGRESS unset or valid: a bad one is refused by the
    slow path, as for every other verb."""
    from stackd.cli.display import ANSI, PROGRESS

    return (os.environ.get("COMPOSE_ANSI") or "auto") in ANSI and \
        (os.environ.get("COMPOSE_PROGRESS") or "auto") in PROGRESS


def _raise(exc: BaseException) -> int:
    raise exc


def console() -> None:
    """The `stackd` command itself (the console script, `python -m stackd`): `main`,
    made to start and leave quickly, as nothing but a whole process may be.

    The collector waits until the verb runs: start-up (imports, argparse) makes no
    cyclic garbage, and its collections of the objects it makes were ~5 ms of every
    command; they are frozen then, so later collections skip them. And a command that
    is done leaves with `os._exit` once its output is flushed, skipping the
    interpreter's teardown (another ~5 ms) — only when nothing else is left to run at
    exit: no other thread, no atexit callback (issue #20: `run --rm`'s time)."""
    global _COLLECT_AT_VERB
    gc.disable()
    _COLLECT_AT_VERB = True
    _stdio_opened()
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a reader gone (`stackd ps | head`): the usual exit deals with it
        raise SystemExit(code) from None
    threading = sys.modules.get("threading")
    ncallbacks = getattr(atexit, "_ncallbacks", None)
    if ((threading is None or threading.active_count() == 1)
            and ncallbacks is not None and ncallbacks() == 0):
        os._exit(code)
    raise SystemExit(code)


_COLLECT_AT_VERB = False


def _stdio_opened() -> None:
    """A closed stdin, stdout or stderr (`stackd exec … 0<&-`, a daemon's child) is
    /dev/null, as a shell gives an empty input: Python left it None, and every verb
    that asks whether stdin is a terminal or relays it failed with a traceback."""
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        if getattr(sys, name) is None:
            opened = os.open(os.devnull, os.O_RDONLY if mode == "r" else os.O_WRONLY)
            if opened != fd:  # the lowest free descriptor is the closed one
                os.dup2(opened, fd)
                os.close(opened)
            os.set_inheritable(fd, True)  # what exec's process is given, as a shell's
            setattr(sys, name, open(fd, mode, closefd=False))  # noqa: SIM115


def _run(run: Callable[[Any], int | None], args: Any) -> int:
    if _COLLECT_AT_VERB:
        gc.freeze()
        gc.enable()
    try:
        return int(run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `stackd logs | head`: the reader left; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # the one place a StackdError becomes an exit code
        from stackd.errors import StackdError, disk_full

        # A full disk met by code that runs in this process (image import, pull) is
        # the user's to fix, not a bug: a message, not a traceback.
        typed = exc if isinstance(exc, StackdError) else disk_full(exc)
        if typed is not None:
            print(f"stackd: {typed}", file=sys.stderr)
            return typed.exit_code
        raise


def load_stack(args: argparse.Namespace, *, all_profiles: bool = False,
               targeted: list[str] | None = None) -> Stack:
    """The stack the global options (-f, -p, --project-directory, --env-file, --profile)
    name, loaded; warnings go to stderr. For every verb that reads stack files.
    targeted: services the command names, enabled with their profiles."""
    from stackd.spec import LoadOptions, load

    profiles = list(getattr(args, "profiles", None) or [])
    stack = load(LoadOptions(
        files=getattr(args, "files", None),
        project_name=getattr(args, "project_name", None),
        project_directory=getattr(args, "project_directory", None),
        env_files=getattr(args, "env_files", None),
        profiles=[*profiles, "*"] if all_profiles else profiles,
        services=targeted,
    ))
    for warning in stack.warnings:
        print(f"stackd: warning: {warning}", file=sys.stderr)
    return stack


if __name__ == "__main__":
    raise SystemExit(main())
