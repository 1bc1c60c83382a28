"""Every host resource stackd owns, found by name (DESIGN "Names on the host"). Reads only.

`tools/leaks` prints them and exits 1 if there are any; the tests' `no_leaks` fixture
runs the same search for its own root id only, because other tests (with other root
ids) run on the same host at the same time.

What counts: network devices `stk<root id>…`; in the nft table `stackd`, chains and
sets named `r<chain id>_…` (the chain id starts with the root id; unfiltered, the
table itself); cgroups under `stackd/<root id>` in any hierarchy; processes in those
cgroups; runtime monitors (`stackd.runtime.monitor --root-id <id>`) and DNS resolvers
(`stackd.netbridge.dnsd --root-id <id>`); mounts under a state root or run dir.

The root id is 16 bits, so two live roots may share one. Each leak therefore also
says which state root owns it (`Leak.owner`, a prefix of `Roots.owner_id`) where the
host records it: a device's ifalias, an nft chain's name (`Roots.chain_id`), a
monitor's or resolver's `--state`, a cgroup's container id in a live root's run dir
(the monitors of the same id are asked), a mount's path. Given the roots it is about,
`find_leaks` leaves out what another root owns, so `no_leaks` and `reclaim` never
report or touch a neighbour's resources.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from stackd.hostnames import CGROUP_PARENT, DEVICE_PREFIX, NFT_TABLE
from stackd.roots import DEFAULT_RUN_ROOT, DEFAULT_STATE_ROOT, Roots

MONITOR_MODULE = "stackd.runtime.monitor"
RESOLVER_MODULE = "stackd.netbridge.dnsd"
HELPERS = {MONITOR_MODULE: "monitor", RESOLVER_MODULE: "resolver"}  # per-root processes
CONTAINER_INIT_COMM = "stackd-init"


@dataclass(frozen=True, order=True, slots=True)
class Leak:
    kind: str  # device | nft | cgroup | process | monitor | resolver | mount
    root_id: str  # "?" when the name does not tell
    what: str
    owner: str = ""  # a prefix of the owning root's Roots.owner_id; "" when not recorded

    def __str__(self) -> str:
        owner = f" (root {self.owner[:12]})" if self.owner else ""
        return f"{self.kind:8} {self.root_id:4} {self.what}{owner}"

    def may_belong_to(self, roots: Roots) -> bool:
        """Not recorded as another root's."""
        return not self.owner or roots.owner_id.startswith(self.owner)


def _mine(root_id: str | None, found: str) -> bool:
    return root_id is None or found == root_id


def devices(root_id: str | None) -> list[Leak]:
    out = []
    for name in sorted(os.listdir("/sys/class/net")):
        if name.startswith(DEVICE_PREFIX) and _mine(root_id, name[3:7]):
            out.append(Leak("device", name[3:7], name, _ifalias(name)))
    return out


def _ifalias(device: str) -> str:
    try:
        return Path(f"/sys/class/net/{device}/ifalias").read_text().strip()
    except OSError:
        return ""


def nft(root_id: str | None) -> list[Leak]:
    out: list[Leak] = []
    for family in ("inet", "ip", "ip6"):
        try:
            proc = subprocess.run(["nft", "-j", "list", "table", family, NFT_TABLE],
                                  capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return out
        if proc.returncode != 0:
            continue  # no such table
        if root_id is None:
            out.append(Leak("nft", "?", f"table {family} {NFT_TABLE}"))
        for item in json.loads(proc.stdout).get("nftables", []):
            for kind in ("chain", "set", "map"):
                obj = item.get(kind)
                if not obj:
                    continue
                name = obj.get("name", "")
                if name.startswith("r") and "_" in name:
                    chain_id = name[1:name.index("_")]
                    if _mine(root_id, chain_id[:4]):
                        # A 4-hex chain id is an older stackd's: it records no more.
                        owner = chain_id if len(chain_id) > 4 else ""
                        out.append(Leak("nft", chain_id[:4],
                                        f"{kind} {family} {NFT_TABLE} {name}", owner))
    return out


def _cgroup_mounts() -> list[Path]:
    mounts = []
    with open("/proc/self/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 2 and parts[2] in ("cgroup", "cgroup2"):
                mounts.append(Path(parts[1]))
    return mounts


def cgroups(root_id: str | None, candidates: Iterable[Roots] = ()
            ) -> tuple[list[Leak], list[Leak]]:
    """Leftover cgroup directories, and the processes still inside them. A container's
    cgroup is owned by the candidate root whose run dir holds that container."""
    groups: list[Leak] = []
    procs: dict[int, Leak] = {}
    known = list(candidates)
    for mount in _cgroup_mounts():
        parent = mount / CGROUP_PARENT
        if not parent.is_dir():
            continue
        if root_id is None and not any(e.is_dir() for e in parent.iterdir()):
            # The shared parent of all roots, left empty: only a look at every root
            # may call it a leak (a root's own check runs beside other roots' tests).
            groups.append(Leak("cgroup", "-", str(parent)))
            continue
        for entry in sorted(parent.iterdir()):
            if not entry.is_dir() or not _mine(root_id, entry.name):
                continue
            for dirpath, _, _ in os.walk(entry):
                rel = Path(dirpath).relative_to(entry).parts
                owner = _container_owner(rel[0], known) if rel else ""
                groups.append(Leak("cgroup", entry.name, dirpath, owner))
                try:
                    pids = Path(dirpath, "cgroup.procs").read_text().split()
                except OSError:
                    pids = []
                for pid in pids:
                    procs.setdefault(int(pid), Leak(
                        "process", entry.name, f"{pid} {_cmdline(int(pid))} in {dirpath}",
                        owner))
    return groups, sorted(procs.values())


def _container_owner(container_id: str, candidates: Iterable[Roots]) -> str:
    owners = {r.owner_id for r in candidates
              if (r.run / "containers" / container_id).exists()}
    return owners.pop() if len(owners) == 1 else ""


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def monitors(root_id: str | None) -> list[tuple[Leak, Roots]]:
    """The root's helper processes: runtime monitors and DNS resolvers."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in argv]
        module = next((m for m in HELPERS if m in args), None)
        if module is None:
            continue
        try:
            if Path(f"/proc/{entry}/comm").read_text().strip() == CONTAINER_INIT_COMM:
                continue  # a container's first process before exec: counted by its cgroup
        except OSError:
            continue
        opts = dict(itertools.pairwise(args))
        rid = opts.get("--root-id", "?")
        if _mine(root_id, rid):
            roots = Roots(Path(opts.get("--state", DEFAULT_STATE_ROOT)),
                          Path(opts.get("--run", DEFAULT_RUN_ROOT)))
            out.append((Leak(HELPERS[module], rid, f"{entry} {' '.join(args).strip()}",
                             roots.owner_id), roots))
    return out


def mounts(under: Iterable[Path], root_id: str, owner: str = "") -> list[Leak]:
    bases = [str(p.resolve()) for p in under]
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            target = line.split()[4].replace("\\040", " ")
            if any(target == b or target.startswith(b + "/") for b in bases):
                out.append(Leak("mount", root_id, target, owner))
    return out


def find_leaks(root_id: str | None = None, roots: Iterable[Roots] = ()) -> list[Leak]:
    """Everything stackd owns on this host (or of one root id), sorted. With `roots`,
    what the host records as another root's is left out."""
    mine = list(roots)
    found: list[Leak] = []
    found += devices(root_id)
    found += nft(root_id)
    live = monitors(root_id)
    known = {*mine, *(r for _, r in live)}
    groups, procs = cgroups(root_id, known)
    found += groups + procs
    found += [leak for leak, _ in live]
    if root_id is None:
        known |= {Roots(Path(DEFAULT_STATE_ROOT), Path(DEFAULT_RUN_ROOT))}
    for r in known:
        exists = r.state.exists()
        found += mounts([r.state, r.run], r.id if exists else "?", r.owner_id if exists else "")
    if mine:
        found = [leak for leak in found if any(leak.may_belong_to(r) for r in mine)]
    return sorted(set(found))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="leaks", description="List host resources stackd owns; exit 1 if there are any.")
    parser.add_argument("--root-id", help="only this state root's resources (4 hex digits)")
    parser.add_argument("--state", type=Path, action="append", default=[],
                        help="also look for mounts under this state root (repeatable)")
    args = parser.parse_args(argv)
    roots = [Roots(s, Path(DEFAULT_RUN_ROOT)) for s in args.state]
    leaks = find_leaks(args.root_id, roots)
    for leak in leaks:
        print(leak)
    return 1 if leaks else 0
