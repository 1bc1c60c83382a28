"""`stackd run [OPTIONS] SERVICE|IMAGE [CMD…]`: a one-off container of a stack's service
(like `docker compose run`) or one container from an image (like `docker run`); its
exit code is ours."""

from __future__ import annotations

import argparse
import sys
from typing import Any

HELP = "Run a one-off container of a service, or one container from an image"

RULE = """\
which one it is:
  A service of the stack: `docker compose run` (its configuration, CMD, its
  depends_on started first); else an image: `docker run`; neither: an error.
"""

# dest → the flag as a user writes it, for the flags only an image run has.
IMAGE_ONLY = {"memory": "-m", "cpus": "--cpus", "pids_limit": "--pids-limit",
              "read_only": "--read-only",
              "network": "--network", "init": "--init",
              "hostname": "-h", "privileged": "--privileged",
              "security_opt": "--security-opt", "tmpfs": "--tmpfs", "ulimit": "--ulimit",
              "stop_signal": "--stop-signal", "stop_timeout": "--stop-timeout",
              "add_host": "--add-host", "dns": "--dns"}
SERVICE_ONLY = {"no_deps": "--no-deps", "build": "--build", "use_aliases": "--use-aliases"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    # -h is --hostname, as in docker run; help stays --help.
    p.conflict_handler = "resolve"
    p.epilog = RULE
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("-d", "--detach", action="store_true", help="print its name and return")
    p.add_argument("--name")
    p.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VAL")
    p.add_argument("--env-file", "--env-from-file", action="append", default=[],
                   metavar="FILE", help="KEY=value lines (as .env files), before -e")
    p.add_argument("-p", "--publish", action="append", default=[],
                   metavar="[IP:]HOST:CONTAINER[/PROTO]")
    p.add_argument("-w", "--workdir", default="")
    p.add_argument("-u", "--user", default="")
    p.add_argument("--entrypoint", default=None)  # says what it does: packed
    p.add_argument("-T", "--no-TTY", dest="no_tty", action="store_true",
                   help="no pty, though ours is a terminal (a service run)")
    p.add_argument("-i", "--interactive", action="store_true",
                   help="stdin attached (a service run: always)")
    p.add_argument("-t", "--tty", action="store_true",
                   help="a pty (a service run: when ours is a terminal)")
    p.add_argument("-v", "--volume", action="append", default=[],
                       metavar="SRC:/DST[:ro]")
    service = p.add_argument_group("service run only")
    p.add_argument("-l", "--label", action="append", default=[], metavar="KEY=VAL")
    service.add_argument("--no-deps", action="store_true",
                         help="don't start the services it depends on")
    p.add_argument("-P", "--service-ports", action="store_true",
                   help="publish the service's (an image's exposed) ports")
    # docker run's long name of -P
    p.add_argument("--publish-all", dest="service_ports", action="store_true",
                   help=argparse.SUPPRESS)
    # Packed on one line, as flags that need no words are (helpformat).
    service.add_argument("--build", action="store_true")
    service.add_argument("--use-aliases", action="store_true")
    p.add_argument("--quiet-pull", action="store_true")
    image = p.add_argument_group("image run only")
    image.add_argument("-m", "--memory", default=None, help="memory limit, e.g. 64m")
    image.add_argument("--cpus", type=float, default=None)
    image.add_argument("--pids-limit", type=int, default=None)
    image.add_argument("--read-only", action="store_true")
    p.add_argument("--cap-add", action="append", default=[], metavar="CAP")
    p.add_argument("--cap-drop", action="append", default=[], metavar="CAP")
    image.add_argument("--network", default="default", metavar="default|none|host|NAME",
                       help="or an existing network (<project>_default)")
    image.add_argument("--init", action="store_true", help="a reaping init as PID 1")
    # None: missing for an image, the service's pull_policy for a service.
    p.add_argument("--pull", choices=["always", "missing", "never"], default=None,
                   metavar="always|missing|never")
    image.add_argument("-h", "--hostname", default=None)
    image.add_argument("--privileged", action="store_true")
    image.add_argument("--security-opt", action="append", default=[],
                       metavar="no-new-privileges|seccomp=unconfined")
    image.add_argument("--tmpfs", action="append", default=[], metavar="/PATH[:size=64m]")
    image.add_argument("--ulimit", action="append", default=[], metavar="NAME=SOFT[:HARD]")
    image.add_argument("--stop-signal", default=None)
    image.add_argument("--stop-timeout", type=int, default=None, metavar="SECONDS")
    image.add_argument("--restart", default="no",
                       metavar="POLICY",
                       help="no, always, on-failure[:N], unless-stopped")
    image.add_argument("--add-host", action="append", default=[], metavar="NAME:IP")
    image.add_argument("--dns", action="append", default=[], metavar="IP")
    p.add_argument("image", metavar="SERVICE|IMAGE")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="CMD")


def _given(args: argparse.Namespace, flags: dict[str, str]) -> list[str]:
    defaults = {"network": "default"}
    return [flag for dest, flag in flags.items()
            if getattr(args, dest) not in (None, False, [], defaults.get(dest))]


def stack_in_play(args: argparse.Namespace) -> bool:
    """-f given (or $STACKD_FILE/$COMPOSE_FILE), or a stack file found the way compose
    discovers one."""
    import os
    from pathlib import Path

    from stackd.cli.stackref import _discover

    if getattr(args, "files", None) or os.environ.get("STACKD_FILE") \
            or os.environ.get("COMPOSE_FILE"):
        return True
    given = getattr(args, "project_directory", None)
    return _discover(Path.cwd() / given if given else Path.cwd()) is not None


def image_body(args: argparse.Namespace) -> dict[str, Any]:
    import shlex

    if args.restart != "no":  # the default needs no check, nor the import (#20: run's start-up)
        from stackd.errors import SpecError, UsageError
        from stackd.reconciler.restart import parse_restart

        try:
            parse_restart(args.restart)
        except SpecError:
            raise UsageError(f"--restart {args.restart!r} is not a restart policy",
                             hint="no, always, unless-stopped or on-failure[:N]") from None

    signal = args.stop_signal.upper() if args.stop_signal else None
    if signal and not signal.startswith("SIG") and not signal.isdigit():
        signal = "SIG" + signal
    return {
        "image": args.image, "cmd": args.cmd,
        "entrypoint": shlex.split(args.entrypoint) if args.entrypoint is not None else None,
        "name": args.name, "env": env_of(args), "publish": args.publish,
        "volumes": [absolute_volume(v) for v in args.volume],
        "workdir": args.workdir, "user": args.user, "memory": args.memory, "cpus": args.cpus,
        "pids_limit": args.pids_limit, "read_only": args.read_only, "cap_add": args.cap_add,
        "cap_drop": args.cap_drop, "network": args.network, "init": args.init, "rm": args.rm,
        "detach": args.detach, "pull": args.pull or "missing", "hostname": args.hostname,
        "privileged": args.privileged, "security_opt": args.security_opt,
        "publish_all": args.service_ports, "tmpfs": args.tmpfs, "ulimit": args.ulimit,
        "stop_signal": signal,
        "stop_timeout": args.stop_timeout, "labels": args.label,
        "add_host": args.add_host, "dns": args.dns, "restart": args.restart,
    }


def env_of(args: argparse.Namespace) -> list[str]:
    """--env-file lines (read here, relative to this directory), then -e."""
    import os
    from pathlib import Path

    from stackd.errors import UsageError

    out: list[str] = []
    for name in args.env_file:
        from stackd.spec.dotenv import parse_raw_env  # with yaml: only when there is a file

        try:
            text = Path(name).read_text()
        except OSError as exc:
            raise UsageError(f"--env-file {name}: {exc.strerror}",
                             hint="give a readable KEY=value file") from None
        out += [f"{k}={v}" for k, v in parse_raw_env(text, name, os.environ).items()]
    # KEY=value taken as written; a bare KEY from this environment, left out if unset
    # (docker run's and Compose's `-e KEY`).
    for item in args.env:
        if not item.partition("=")[0]:
            raise UsageError(f"-e {item!r} names no variable", hint="e.g. -e KEY=value")
    return out + [item if "=" in item else f"{item}={os.environ[item]}"
                  for item in args.env if "=" in item or item in os.environ]


def absolute_volume(text: str) -> str:
    """`-v ./data:/data`: a relative source is a bind of that path here, as in Docker."""
    import os

    if text.startswith(("./", "../")) or text.startswith(".:") or text.startswith("~/"):
        source, sep, rest = text.partition(":")
        return os.path.abspath(os.path.expanduser(source)) + sep + rest
    return text


def service_body(args: argparse.Namespace) -> dict[str, Any]:
    import shlex

    from stackd.cli.stackref import source_from_args

    return {
        "source": source_from_args(args, [args.image]), "service": args.image,
        "cmd": args.cmd,
        "entrypoint": shlex.split(args.entrypoint) if args.entrypoint is not None else None,
        "name": args.name, "env": env_of(args), "labels": args.label,
        "publish": args.publish,
        "service_ports": args.service_ports, "no_deps": args.no_deps, "build": args.build,
        "use_aliases": args.use_aliases, "pull": args.pull,
        "cap_add": args.cap_add, "cap_drop": args.cap_drop,
        "volumes": [absolute_volume(v) for v in args.volume],
        "workdir": args.workdir, "user": args.user, "rm": args.rm, "detach": args.detach,
        "image_only": _given(args, IMAGE_ONLY),
        # The docker-run reading, for a name that is an image rather than a service;
        # flags only a service run has leave no such reading.
        "image_run": None if _given(args, SERVICE_ONLY) else image_body(args),
    }


def run(args: argparse.Namespace) -> int:
    from stackd.cli.client import Client
    from stackd.errors import UsageError

    if args.tty and args.no_tty:
        raise UsageError("-t and -T contradict each other", hint="give one of them")
    given = attach_body(args) if args.interactive or args.tty else None
    if stack_in_play(args):
        path, body = "/v1/stacks/run", service_body(args)
        # Compose's run, unlike docker's: stdin attached, and a pty when ours is a
        # terminal (-T: none; -t: one) — `stackd run app bash` is a shell, and
        # `< dump.sql` is read. The image reading keeps docker run's: what -i/-t ask.
        flags = given if args.detach else attach_body(argparse.Namespace(**{
            **vars(args), "interactive": args.interactive or not _stdin_is_null(),
            "tty": args.tty or (not args.no_tty and sys.stdin.isatty()
                                and sys.stdout.isatty())}))
        if flags is not None:
            body.update(flags)
        if given is not None and body.get("image_run"):
            body["image_run"].update(given)
    else:
        service_only = _given(args, SERVICE_ONLY)
        if service_only:
            raise UsageError(f"{', '.join(service_only)}: only for a service run, and no "
                             "stack file is in play here",
                             hint="run it where compose.yaml is, or give -f FILE")
        path, body = "/v1/containers/run", image_body(args)
        if given is not None:
            body.update(given)
    name = None
    attached = False
    with Client() as client:
        try:
            for item in client.stream("POST", path, json_body=body):
                if "progress" in item:
                    prog = item["progress"]  # a dependency coming up
                    if args.quiet_pull and str(prog.get("message", "")).startswith("pull: "):
                        continue
                    mark = "" if prog["state"] == "done" else f" ({prog['state']})"
                    print(f"{prog['message']}{mark}", file=sys.stderr)
                elif "started" in item:
                    name = item["started"]["name"]
                    if args.detach:
                        print(name)
                        return 0
                    started = item["started"]
                    if started.get("stdin") or started.get("tty"):
                        attached = attach_to(started["id"], bool(started.get("stdin")))
                elif "line" in item and attached:
                    continue  # came through the attachment already, byte for byte
                elif "line" in item:
                    out = sys.stdout if item["stream"] == "stdout" else sys.stderr
                    out.write(item["line"] + "\n")
                    out.flush()
                elif "exit" in item:
                    return int(item["exit"]["code"])
        except KeyboardInterrupt:
            if name:  # as docker's sig-proxy: Ctrl-C reaches the container
                client.post(f"/v1/containers/{name}/kill", signal="SIGTERM")
            return 130
    # The daemon closed the stream cleanly yet said nothing of the exit: never a silent 1.
    from stackd.errors import UnavailableError

    raise UnavailableError(
        f"the daemon ended the stream before {name or 'the container'} exited, so its "
        "exit code is unknown",
        hint=f"see `stackd ps -a` and `stackd logs {name}`" if name
        else "see `stackd daemon status` and the daemon's log")


def _stdin_is_null() -> bool:
    """Whether our stdin is /dev/null: nothing would come through an attachment, and
    the plain stream is ~70 ms quicker than attaching (scripts, CI)."""
    import os
    import stat

    try:
        ours, null = os.fstat(0), os.stat(os.devnull)
    except OSError:
        return True
    return stat.S_ISCHR(ours.st_mode) and ours.st_rdev == null.st_rdev


def attach_body(args: argparse.Namespace) -> dict[str, Any]:
    """-i/-t for the request: and our terminal's size, for the container's pty."""
    import os

    rows = cols = 0
    if args.tty:
        for fd in (0, 1):
            try:
                cols, rows = os.get_terminal_size(fd)
                break
            except OSError:
                continue
    return {"interactive": args.interactive, "tty": args.tty,
            "console_rows": rows, "console_cols": cols}


def attach_to(container_id: str, stdin: bool) -> bool:
    """Relay our stdio to the started container until it exits (stackd.runtime.attach);
    False if it could not be attached (then its output comes as lines)."""
    from stackd.daemon.host_verbs import attach
    from stackd.errors import ConflictError, NotFoundError, UnavailableError
    from stackd.roots import Roots

    sys.stdout.flush()
    try:
        attach(Roots.from_env(), container_id, stdin=stdin)
    except (NotFoundError, ConflictError, UnavailableError):
        return False  # gone already (a quick --rm): its lines follow on the stream
    return True
