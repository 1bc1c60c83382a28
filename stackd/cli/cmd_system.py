"""`stackd system df | info | prune`: Docker's summary of what the root holds on disk,
of this host and root as a bug report wants them, and its one clean-up of everything
nothing uses.

`prune` is the others in Docker's order — the stopped containers (`container prune`),
then the networks no container uses (`network prune`), with `--volumes` the anonymous
volumes no container mounts (`volume prune`, as Docker's since 23.0), then the images
(`image prune`; `-a`: every one no container uses) and the build cache (`builder
prune`) — so that what a removed container held is free for the steps after it. It
asks first, as Docker's, unless `-f`. The space it gave back is what the state root's
filesystem gained: freed blocks, whatever held them.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

HELP = "Disk usage (df), the host and root (info), removing what nothing uses (prune)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="subverb", required=True, metavar="{df,info,prune}")
    info = sub.add_parser("info", help="versions, containers, images, the host's kernel, "
                                       "cgroups, CPUs and memory, the roots")
    info.add_argument("--format", default="text", help="text, or json")
    df = sub.add_parser("df", help="images, containers, volumes and build cache: how "
                                   "many, how many in use, their size, what a prune frees")
    df.add_argument("--format", default="table", help="table, or json")
    prune = sub.add_parser("prune", help="remove stopped containers, unused networks, "
                                         "unnamed images and the build cache")
    prune.add_argument("-a", "--all", action="store_true",
                       help="every image no container uses, not only the unnamed ones")
    prune.add_argument("--volumes", action="store_true",
                       help="the anonymous volumes no container mounts too")
    prune.add_argument("-f", "--force", action="store_true", help="don't ask")


def run(args: argparse.Namespace) -> int:
    from stackd.roots import Roots

    roots = Roots.from_env().ensure()
    if args.subverb == "info":
        facts = host_info(roots)
        if args.format == "json":
            import json

            print(json.dumps(facts, indent=2))
        elif args.format == "text":
            sys.stdout.write(info_text(facts))
        else:
            from stackd.errors import UsageError

            raise UsageError(f"system info --format {args.format}: not a format stackd has",
                             hint="use text or json")
        return 0
    if args.subverb == "df":
        rows = usage(roots)
        if args.format == "json":
            import json

            print(json.dumps(rows, indent=2))
        elif args.format == "table":
            print(df_table(rows))
        else:
            from stackd.errors import UsageError

            raise UsageError(f"system df --format {args.format}: not a format stackd has",
                             hint="use table or json")
        return 0
    return _prune(roots, args)


def _prune(roots: Any, args: argparse.Namespace) -> int:
    import os

    from stackd.cli.humanize import decimal_size

    what = ["all stopped containers", "all networks not used by at least one container"]
    if args.volumes:
        what.append("all anonymous volumes not used by at least one container")
    what += ["all images without at least one container associated to them" if args.all
             else "all dangling images", "all build cache"]
    if not args.force:
        _confirm("WARNING! This will remove:\n" + "".join(f"  - {w}\n" for w in what))
    st = os.statvfs(roots.state)
    free_before = st.f_bfree * st.f_frsize

    from stackd.cli.client import Client
    from stackd.cli.cmd_container import prune_stopped

    with Client() as client:
        _section("Deleted Containers", prune_stopped(client))

    from stackd.daemon.host_verbs import NetworkAdmin, VolumeAdmin

    with NetworkAdmin(roots) as nets:
        _section("Deleted Networks", nets.prune())
    if args.volumes:
        with VolumeAdmin(roots) as volumes:  # after the containers: they held some
            _section("Deleted Volumes", volumes.prune(all=False))

    from stackd.cli.cmd_rmi import containers_here
    from stackd.daemon.stack_images import layers_in_use
    from stackd.images import ImageStore
    from stackd.images.build.cache import BuildCache
    from stackd.images.build.cachemounts import CacheDirs
    from stackd.images.reference import parse

    store = ImageStore(roots)
    steps = BuildCache(store).forget_all()
    mounts = CacheDirs(store.root).prune()
    in_use = layers_in_use(containers_here())
    untagged = store.untag_unused(in_use) if args.all else []
    report = store.prune(in_use=in_use)
    _section("Deleted Images", [f"untagged: {parse(n).familiar()}" for n in untagged] + (
        [f"deleted: {report.snapshots_removed} layers, {report.blobs_removed} blobs"]
        if report.snapshots_removed or report.blobs_removed else []))
    if steps or mounts:
        print(f"Deleted build cache: {steps} cached steps, {mounts} cache mounts\n")
    st = os.statvfs(roots.state)
    gained = st.f_bfree * st.f_frsize - free_before
    print(f"Total reclaimed space: {decimal_size(max(gained, 0))}")
    return 0


def _confirm(warning: str) -> None:
    from stackd.cli.confirm import confirmed

    if not confirmed(warning + "\nAre you sure you want to continue? [y/N] ",
                     refusal="system prune removes containers, networks and images, and "
                     "asks first"):
        raise SystemExit(1)


def _section(title: str, names: list[str]) -> None:
    if names:
        print(f"{title}:\n" + "".join(f"{n}\n" for n in names))


def usage(roots: Any) -> list[dict[str, Any]]:
    """Docker's four rows: what there is of each kind, how much of it is in use, its
    size, and how much a prune would give back (`reclaimable`)."""
    from stackd.daemon.host_verbs import VolumeAdmin, containers_here, writable_layer_sizes
    from stackd.daemon.stack_images import users_of
    from stackd.images import ImageStore
    from stackd.images.build.cache import BuildCache
    from stackd.images.build.cachemounts import CacheDirs
    from stackd.trees import tree_size

    views = containers_here(roots)
    store = ImageStore(roots)
    images = [(img, bool(users_of(store.get(img.id).layer_dirs, views)))
              for img in store.list()]
    sized = writable_layer_sizes(roots, views)
    with VolumeAdmin(roots) as admin:
        volumes = [(tree_size(v["mountpoint"]), bool(v["containers"])) for v in admin.list()]
    cache = BuildCache(store)
    steps = len(list(cache.dir.glob("*.json")))
    mounts = CacheDirs(store.root).dir
    homes = list(mounts.iterdir()) if mounts.is_dir() else []
    cache_size = sum(tree_size(h) for h in homes)

    def row(kind: str, items: list[tuple[int, bool]], total: int | None = None) -> dict[str, Any]:
        size = sum(s for s, _ in items)
        return {"type": kind, "total": len(items) if total is None else total,
                "active": sum(1 for _, used in items if used), "size": size,
                "reclaimable": sum(s for s, used in items if not used)}

    return [row("Images", [(img.size, used) for img, used in images]),
            row("Containers", sized),
            row("Local Volumes", volumes),
            row("Build Cache", [(cache_size, False)], total=steps + len(homes))]


def df_table(rows: list[dict[str, Any]]) -> str:
    from stackd.cli.humanize import decimal_size
    from stackd.cli.table import render

    def reclaimable(r: dict[str, Any]) -> str:
        share = f" ({100 * r['reclaimable'] // r['size']}%)" if r["size"] else ""
        return decimal_size(r["reclaimable"]) + share

    return render(("TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"),
                  [(r["type"], str(r["total"]), str(r["active"]), decimal_size(r["size"]),
                    reclaimable(r)) for r in rows])


def host_info(roots: Any) -> dict[str, Any]:
    """What `docker info` says that stackd has: versions, containers by state, images,
    networks, volumes, and the host's kernel, cgroups, CPUs, memory and the roots. A
    daemon that does not run is said, not started."""
    import os

    from stackd import __version__
    from stackd.cli.client import Client
    from stackd.daemon.host_verbs import NetworkAdmin, VolumeAdmin, containers_here, host_facts
    from stackd.errors import UnavailableError
    from stackd.images import ImageStore

    daemon: dict[str, Any] | None = None
    rows: list[dict[str, Any]] | None = None
    try:
        with Client(autostart=False) as client:
            daemon = client.get("/v1/version")
            rows = client.get("/v1/containers", all=True)
    except UnavailableError:
        pass
    if rows is not None:
        states = [("paused" if r.get("paused") else "running") if r["state"] == "running"
                  else "stopped" for r in rows]
    else:  # no daemon to say which are paused: the runtime's records
        states = ["running" if v.status == "running" else "stopped"
                  for v in containers_here(roots)]
    with NetworkAdmin(roots) as nets:
        networks = len(nets.network_keys())
    with VolumeAdmin(roots) as volumes:
        volume_count = len(volumes.list())
    uname = os.uname()
    return {
        "client_version": __version__,
        "daemon": ({"version": daemon.get("version"), "pid": daemon.get("pid")}
                   if daemon else None),
        "containers": {"total": len(states), "running": states.count("running"),
                       "paused": states.count("paused"), "stopped": states.count("stopped")},
        "images": len(ImageStore(roots).list()),
        "networks": networks,
        "volumes": volume_count,
        "storage_driver": "overlay (stackd's layer store)",
        **host_facts(),
        "kernel_version": uname.release,
        "operating_system": _os_name(),
        "architecture": uname.machine,
        "cpus": len(os.sched_getaffinity(0)),
        "state_root": str(roots.state),
        "run_root": str(roots.run),
    }


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "unknown"


def info_text(facts: dict[str, Any]) -> str:
    from stackd.cli.humanize import binary_size
    from stackd.printable import shown

    c, d = facts["containers"], facts["daemon"]
    lines = [
        f"Client: stackd {facts['client_version']}",
        "Server:",
        f" Daemon: {d['version']}, pid {d['pid']}" if d
        else " Daemon: not running (commands that need it start it)",
        f" Containers: {c['total']}",
        f"  Running: {c['running']}",
        f"  Paused: {c['paused']}",
        f"  Stopped: {c['stopped']}",
        f" Images: {facts['images']}",
        f" Networks: {facts['networks']}",
        f" Volumes: {facts['volumes']}",
        f" Storage Driver: {facts['storage_driver']}",
        f" Cgroup Version: {facts['cgroup_version']}",
        f" Kernel Version: {facts['kernel_version']}",
        f" Operating System: {shown(facts['operating_system'])}",
        f" Architecture: {facts['architecture']}",
        f" CPUs: {facts['cpus']}",
        f" Total Memory: {binary_size(facts['total_memory'])}",
        f" Stackd Root Dir: {facts['state_root']}",
        f" Stackd Run Dir: {facts['run_root']}",
    ]
    return "".join(f"{line}\n" for line in lines)
