"""`stackd daemon [status|stop]`: run the daemon in the foreground, or ask about it."""

from __future__ import annotations

import argparse
import json
import os
import signal
import time

HELP = "Run the stackd daemon (foreground), or show its status / stop it"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", choices=["run", "status", "stop"], default="run",
                   help="run (default: serve in the foreground), status, or stop")
    p.add_argument("--resync", type=float, default=30.0, metavar="SECONDS",
                   help="period of the full resync of every stack (default 30)")
    p.add_argument("--webhook-listen", metavar="HOST:PORT",
                   default=os.environ.get("STACKD_WEBHOOK_LISTEN") or None,
                   help="serve GitOps webhooks on this TCP address (docs/gitops.md; "
                   "also STACKD_WEBHOOK_LISTEN)")
    p.add_argument("--webhook-secret-file", metavar="FILE",
                   default=os.environ.get("STACKD_WEBHOOK_SECRET_FILE") or None,
                   help="the webhooks' shared secret / HMAC key (also "
                   "STACKD_WEBHOOK_SECRET_FILE)")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="stop: seconds to wait for the daemon to exit")


def run(args: argparse.Namespace) -> int:
    from stackd.roots import Roots

    roots = Roots.from_env()
    if args.action == "run":
        from stackd.daemon.server import main
        from stackd.gitops.service import GitOps

        gitops = GitOps(webhook_listen=args.webhook_listen,
                        webhook_secret_file=args.webhook_secret_file)
        return main(roots, resync_period=args.resync, extensions=(gitops,))
    if args.action == "status":
        return _status(roots, args.format)
    return _stop(roots, args.timeout)


def _status(roots: object, fmt: str) -> int:
    from stackd.cli.client import Client, daemon_pid
    from stackd.daemon.paths import socket_path

    pid = daemon_pid(roots)  # type: ignore[arg-type]
    info: dict[str, object] = {"running": False, "pid": pid,
                               "socket": str(socket_path(roots))}  # type: ignore[arg-type]
    if pid is not None:
        with Client(roots, autostart=False) as c:  # type: ignore[arg-type]
            if c.alive():
                v = c.get("/v1/version")
                info.update(running=True, version=v["version"],
                            uptime=round(time.time() - v["started"], 1),
                            stacks=len(c.get("/v1/stacks")), faults=v.get("faults", []))
    if fmt == "json":
        print(json.dumps(info))
    elif info["running"]:
        print(f"stackd daemon running: pid {pid}, version {info['version']}, "
              f"up {info['uptime']}s, {info['stacks']} stack(s), socket {info['socket']}")
        for fault in info["faults"]:  # type: ignore[attr-defined]
            print(f"fault: {fault['kind']}: {fault['message']}")
    elif pid is not None:
        print(f"stackd daemon pid {pid} holds the lock but does not answer on {info['socket']}")
    else:
        print("stackd daemon is not running (the next stackd command starts it)")
    if not info["running"]:
        return 3
    return 1 if info["faults"] else 0  # running, but a fault (a full disk) holds it back


def _stop(roots: object, timeout: float) -> int:
    from stackd.cli.client import daemon_pid

    pid = daemon_pid(roots)  # type: ignore[arg-type]
    if pid is None:
        print("stackd daemon is not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon_pid(roots) is None:  # type: ignore[arg-type]
            print(f"stackd daemon (pid {pid}) stopped; containers keep running")
            return 0
        time.sleep(0.05)
    from stackd.errors import UnavailableError

    raise UnavailableError(f"stackd daemon (pid {pid}) did not stop within {timeout:.0f}s",
                           hint=f"kill -9 {pid} is safe: containers survive and are adopted")
