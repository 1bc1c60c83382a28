"""`stackd watch [SERVICE…]`: Compose's watch. The services with `develop.watch` rules
are built and started (`up -d --build`, unless --no-up), then their rules are followed:
a change on the host is synced into every running container of the service (written,
or removed), or restarts it, or runs a command in it, or rebuilds its image and makes
its containers again — docs/reference.md, "watch".

The host is looked at every POLL seconds (cli/filescan.py); changes are gathered until
a look finds nothing new, then acted on at once, so saving ten files is one action.
Ctrl-C (or SIGTERM) stops the watch; the stack keeps running (`stackd down` stops it).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

HELP = "Sync, restart or rebuild services as their files change (develop.watch)"
EXAMPLE = "stackd watch web"
POLL = 0.25  # seconds between looks at the host


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-up", action="store_true",
                   help="do not build and start the services first")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("services", nargs="*", metavar="SERVICE")


def run(args: argparse.Namespace) -> int:
    from stackd.cli.client import Client
    from stackd.cli.cmd_up import apply
    from stackd.cli.main import load_stack
    from stackd.cli.stackref import source_from_args
    from stackd.errors import UsageError
    from stackd.scheduler.order import check_named

    stack = load_stack(args, targeted=args.services)
    if args.services:
        check_named(stack.services, args.services)
    watched = _watched(stack, args.services)
    if not watched:
        raise UsageError("none of the services has develop.watch rules",
                         hint="add a develop: watch: section to a service (docs/reference.md)")
    def say(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr)

    with Client() as client:
        if not args.no_up:
            _, ok = apply(client, {"source": source_from_args(args, list(watched)),
                                   "options": {"services": sorted(watched), "build": True}})
            if not ok:
                return 1
        watcher = _Watcher(args, stack.name, watched, client, say)
        # SIGTERM stops it as Ctrl-C does (a process manager's stop; and a watch put in
        # the background by a script, where SIGINT is ignored).
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            watcher.loop()
        except KeyboardInterrupt:
            say(f"\nwatch stopped; {stack.name} keeps running (`stackd down` stops it)")
    return 0


def watcher_for(args: argparse.Namespace) -> Callable[[str], None]:
    """`up --watch`: the rules checked now; the returned call starts following them in
    a thread of their own, beside `up`'s log follower, once the stack is up."""
    import threading

    from stackd.cli.client import Client
    from stackd.cli.main import load_stack
    from stackd.errors import UsageError

    watched = _watched(load_stack(args, targeted=args.services), args.services)
    if not watched:
        raise UsageError("--watch: none of the services has develop.watch rules",
                         hint="add a develop: watch: section to a service "
                              "(docs/reference.md)")

    def start(project: str) -> None:
        def say(message: str) -> None:
            print(f"watch: {message}", file=sys.stderr)

        watcher = _Watcher(args, project, watched, Client(), say)
        threading.Thread(target=watcher.loop, name="watch", daemon=True).start()

    return start


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _watched(stack: Any, services: list[str]) -> dict[str, Any]:
    from stackd.cli.watchplan import Watched
    from stackd.images.build.dockerignore import parse_dockerignore

    out = {}
    for name, svc in sorted(stack.services.items()):
        if services and name not in services:
            continue
        if svc.develop is None or not svc.develop.watch:
            continue
        context: str | None = None
        ignore: tuple[Any, ...] = ()
        if svc.build is not None and "://" not in svc.build.context:
            context = svc.build.context
            try:
                with open(os.path.join(context, ".dockerignore")) as f:
                    ignore = tuple(parse_dockerignore(f.read()))
            except OSError:
                ignore = ()
        out[name] = Watched(tuple(svc.develop.watch), context, ignore)
    return out


class _Watcher:
    def __init__(self, args: argparse.Namespace, project: str, watched: dict[str, Any],
                 client: Any, say: Callable[[str], None]) -> None:
        from stackd.roots import Roots

        self.args = args
        self.project = project
        self.watched = watched
        self.client = client
        self.say = say
        self.roots = Roots.from_env()
        self.paths = sorted({r.path for w in watched.values() for r in w.rules})
        self.rules = [r for w in watched.values() for r in w.rules]

    def _skip(self, path: str) -> bool:
        from stackd.cli.watchplan import relative_to

        # Not walked: what every rule that covers it ignores (node_modules/, .git).
        covering = [r for r in self.rules if path == r.path or path.startswith(r.path + "/")]
        return bool(covering) and all(relative_to(r, path, walking=True) is None
                                      for r in covering)

    def loop(self) -> None:
        from stackd.cli.filescan import changes, look
        from stackd.cli.watchplan import initial, plan

        seen = look(self.paths, self._skip)
        files = [p for p, sig in seen.items() if sig[0] != "d"]
        for actions in initial(self.watched, files):
            self._act(actions, first=True)
        shown = [os.path.relpath(p) if p.startswith(os.getcwd() + "/") else p
                 for p in self.paths]
        self.say(f"watching {', '.join(shown)} for {', '.join(sorted(self.watched))} "
                 "(Ctrl-C to stop)")
        while True:
            time.sleep(POLL)
            now = look(self.paths, self._skip)
            batch = changes(seen, now)
            if not batch:
                continue
            while True:  # until a look finds nothing new: one action per save
                time.sleep(POLL)
                later = look(self.paths, self._skip)
                more = changes(now, later)
                if not more:
                    break
                batch = changes(seen, later)
                now = later
            seen = now
            for actions in plan(self.watched, batch):
                self._act(actions)

    def _act(self, a: Any, *, first: bool = False) -> None:
        from stackd.errors import StackdError

        n = len(a.changed)
        what = f"{n} change{'s' if n != 1 else ''}"
        try:
            if a.rebuild:
                self.say(f"{a.service}: rebuilding after {what}")
                self._rebuild(a.service)
                return
            if a.syncs:
                self._sync(a.service, a.syncs)
                self.say(f"{a.service}: synced {_list(a.syncs)}"
                         + (" (initial sync)" if first else f" after {what}"))
            if a.restart:
                self.say(f"{a.service}: restarting")
                self._restart(a.service)
            for hook in a.execs:
                self._exec(a.service, hook)
        except StackdError as err:  # a failed action is said; the watch goes on
            print(f"stackd: watch: {a.service}: {err.message}"
                  + (f"\n  hint: {err.hint}" if err.hint else ""), file=sys.stderr)

    def _running(self, service: str) -> list[dict[str, Any]]:
        rows = self.client.get("/v1/containers", project=self.project)
        return [r for r in rows if r["service"] == service and not r.get("oneoff")
                and r["state"] == "running"]

    def _sync(self, service: str, syncs: Any) -> None:
        from stackd.daemon.host_verbs import sync
        from stackd.errors import ConflictError

        running = self._running(service)
        if not running:
            raise ConflictError(f"no running container of {service} to sync into",
                                hint=f"start it (`stackd up -d {service}`)")
        for row in running:
            sync(self.roots, row["id"], [(s.host, s.container, s.removed) for s in syncs])

    def _restart(self, service: str) -> None:
        from stackd.cli.cmd_lifecycle import lifecycle

        lifecycle(self.client, self.project, "restart",
                  {"services": [service], "signal": "SIGKILL", "force": False,
                   "timeout": None})

    def _exec(self, service: str, hook: Any) -> None:
        for row in self._running(service):
            result = self.client.post(f"/v1/containers/{row['name']}/exec", {
                "cmd": list(hook.command),
                "env": [f"{k}={v}" for k, v in hook.environment.items() if v is not None],
                "user": hook.user or "", "workdir": hook.working_dir or ""})
            out = (result.get("stdout") or "") + (result.get("stderr") or "")
            if result.get("exit_code"):
                print(f"stackd: watch: {row['name']}: {' '.join(hook.command)} exited "
                      f"{result['exit_code']}" + (f":\n{out.rstrip()}" if out else ""),
                      file=sys.stderr)
            elif out and not getattr(self.args, "quiet", False):
                print(out.rstrip(), file=sys.stderr)

    def _rebuild(self, service: str) -> None:
        from stackd.cli.cmd_up import apply
        from stackd.cli.stackref import source_from_args

        _, ok = apply(self.client, {"source": source_from_args(self.args, [service]),
                                    "options": {"services": [service], "build": True,
                                                "no_deps": True}}, quiet=True)
        if not ok:
            print(f"stackd: watch: {service}: the rebuild failed; watching on",
                  file=sys.stderr)


def _list(syncs: Any) -> str:
    names = [s.container + (" (removed)" if s.removed else "") for s in syncs]
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
