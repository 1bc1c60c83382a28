"""`stackd attach SERVICE`: a service's running container's output until it exits, then
its exit code, as compose's `attach`. A container of a service with `stdin_open: true`
also takes our stdin (its TTY, with `tty: true`: raw, Ctrl-C is the container's, and
Ctrl-P Ctrl-Q — or `--detach-keys` — detaches); the first attach also shows what it
printed before (up to 1 MiB, kept by the monitor until then). Other containers, or
`--no-stdin`: the output from now; Ctrl-C and SIGTERM go on to the container's process
(`--sig-proxy`, Compose's default) and the output is followed until it exits (a second
Ctrl-C at once detaches), or with `--no-sig-proxy` Ctrl-C detaches and leaves it
running."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

from stackd.cli.detachkeys import DEFAULT as DEFAULT_KEYS

HELP = "Follow a service container's output until it exits (its exit code)"
DETACH_WINDOW = 2.0  # seconds: a second Ctrl-C this soon after one proxied detaches


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", type=int, default=1, help="which replica (default 1)")
    p.add_argument("--no-stdin", action="store_true",
                   help="do not attach stdin (only services with stdin_open take it)")
    p.add_argument("--detach-keys", default=DEFAULT_KEYS, metavar="KEYS",
                   help="the keys that detach from a TTY (default ctrl-p,ctrl-q)")
    p.add_argument("--sig-proxy", action=argparse.BooleanOptionalAction, default=True,
                   help="Ctrl-C (SIGINT) and SIGTERM go to the container's process, as "
                        "Compose's (default); --no-sig-proxy: Ctrl-C detaches")
    p.add_argument("service", metavar="SERVICE")


def run(args: argparse.Namespace) -> int:
    import sys

    from stackd.cli.client import Client
    from stackd.cli.detachkeys import parse_detach_keys
    from stackd.cli.stackref import project_of
    from stackd.errors import NotFoundError, UsageError

    try:
        keys = parse_detach_keys(args.detach_keys)
    except ValueError as err:
        raise UsageError(f"--detach-keys {args.detach_keys!r}: {err}",
                         hint="e.g. --detach-keys ctrl-x,x") from None
    project = project_of(args)
    with Client() as client:
        rows = [r for r in client.get("/v1/containers", project=project, all=False)
                if r.get("service") == args.service and not r.get("oneoff")]
        row = next((r for r in rows if r.get("index") == args.index), None)
        if row is None:
            raise NotFoundError(
                f"no running container of {args.service} (replica {args.index}) in "
                f"project {project}", hint="see `stackd ps -a`")
        if not args.no_stdin:
            attached = _attach_stdin(row["id"], keys)
            if attached is not None:
                return attached
        try:
            with _proxied(client, row["name"], args.sig_proxy):
                for rec in client.stream("GET", f"/v1/containers/{row['id']}/logs",
                                         params={"follow": True, "tail": 0}):
                    out = sys.stderr if rec.get("stream") == "stderr" else sys.stdout
                    out.write(rec.get("line", "") + "\n")
                    out.flush()
        except KeyboardInterrupt:
            return 0  # detached; the container runs on
        done = next((r for r in client.get("/v1/containers", project=project, all=True)
                     if r["id"] == row["id"]), None)
    code = done.get("exit_code") if done is not None else None
    return int(code) if isinstance(code, int) else 0


def _proxied(client: object, name: str, on: bool) -> AbstractContextManager[None]:
    """While following: SIGINT and SIGTERM sent on to the container (`--sig-proxy`),
    the follow going on meanwhile; a second Ctrl-C within DETACH_WINDOW seconds
    detaches (a container that ignores SIGINT does not hold the terminal)."""
    import signal
    import time

    if not on:
        return nullcontext()

    @contextmanager
    def proxy() -> Iterator[None]:
        last = [-DETACH_WINDOW]

        def forward(signum: int, frame: object) -> None:
            from stackd.errors import StackdError

            now = time.monotonic()
            if signum == signal.SIGINT and now - last[0] < DETACH_WINDOW:
                raise KeyboardInterrupt
            last[0] = now
            try:
                client.post(f"/v1/containers/{name}/kill",  # type: ignore[attr-defined]
                            signal=signal.Signals(signum).name)
            except StackdError:
                pass  # exited meanwhile: the follow ends by itself

        before = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in before.items():
                signal.signal(s, h)

    return proxy()


def _attach_stdin(container_id: str, keys: bytes) -> int | None:
    """Relay our stdin and stdout to a container made with stdin_open: its exit code (0
    if detached with Ctrl-P Ctrl-Q); None if it takes no stdin (then only its output)."""
    import sys

    from stackd.daemon.host_verbs import attach
    from stackd.errors import ConflictError, UnavailableError
    from stackd.roots import Roots

    sys.stdout.flush()
    try:
        record = attach(Roots.from_env(), container_id, stdin=True, detach_keys=keys)
    except ConflictError:
        return None  # not created to be attached: follow its output instead
    if record is None:
        raise UnavailableError(f"lost the runtime monitor while attached to {container_id}",
                               hint="`stackd ps -a` shows whether it still runs")
    if record.get("detached"):
        return 0
    code = record.get("code")
    return int(code) if isinstance(code, int) else 0
