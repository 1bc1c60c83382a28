"""`stackd run IMAGE [CMD…]`: one container, like `docker run`; its exit code is ours."""

from __future__ import annotations

import argparse
import sys

HELP = "Run one container from an image (like docker run)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("-d", "--detach", action="store_true", help="print its name and return")
    p.add_argument("--name")
    p.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VAL")
    p.add_argument("-p", "--publish", action="append", default=[],
                   metavar="[IP:]HOST:CONTAINER[/PROTO]")
    p.add_argument("-v", "--volume", action="append", default=[], metavar="SRC:/DST[:ro]")
    p.add_argument("-w", "--workdir", default="")
    p.add_argument("-u", "--user", default="")
    p.add_argument("-m", "--memory", default=None, help="memory limit, e.g. 64m")
    p.add_argument("--cpus", type=float, default=None)
    p.add_argument("--pids-limit", type=int, default=None)
    p.add_argument("--read-only", action="store_true")
    p.add_argument("--cap-add", action="append", default=[])
    p.add_argument("--cap-drop", action="append", default=[])
    p.add_argument("--network", choices=["default", "bridge", "none", "host"], default="default")
    p.add_argument("--init", action="store_true", help="a reaping init as PID 1")
    p.add_argument("--entrypoint", default=None, help="override the image's entrypoint")
    p.add_argument("--pull", choices=["always", "missing", "never"], default="missing")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="CMD")


def run(args: argparse.Namespace) -> int:
    import shlex

    from stackd.cli.client import Client

    body = {
        "image": args.image, "cmd": args.cmd,
        "entrypoint": shlex.split(args.entrypoint) if args.entrypoint is not None else None,
        "name": args.name, "env": args.env, "publish": args.publish, "volumes": args.volume,
        "workdir": args.workdir, "user": args.user, "memory": args.memory, "cpus": args.cpus,
        "pids_limit": args.pids_limit, "read_only": args.read_only, "cap_add": args.cap_add,
        "cap_drop": args.cap_drop, "network": args.network, "init": args.init, "rm": args.rm,
        "detach": args.detach, "pull": args.pull,
    }
    name = None
    with Client() as client:
        try:
            for item in client.stream("POST", "/v1/containers/run", json_body=body):
                if "started" in item:
                    name = item["started"]["name"]
                    if args.detach:
                        print(name)
                        return 0
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
    return 1
