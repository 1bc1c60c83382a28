"""The nftables rules of one state root, rendered from its networks and published ports.

All of stackd's rules live in the table `stackd` (family inet). Each state root owns
the chains named with its prefix (`hostnames.nft_chain_prefix` of `Roots.chain_id`, 48
bits of the state root's hash) and nothing else, so roots on one host — parallel test
runs, even two whose 16-bit root ids collide — never touch each other's rules. The rules are
a pure function of the rows in the state store (`render`); `apply` replaces the root's
chains with them in one nft transaction, so the kernel never sees half a change.

Per network bridge B with subnet S:

- forward: traffic inside B passes; into B only replies and published (DNAT'ed)
  connections pass; out of B passes unless the network is internal. This is both the
  isolation between networks and the "no way out" of internal ones. Base chains keep
  policy accept: stackd decides only about packets touching its own bridges.
- nat: published ports are DNAT'ed (balanced over a service's ready replicas) in
  prerouting (other hosts, containers) and output (the host itself, 127.0.0.1
  included); S is masqueraded out of the host unless internal; connections from
  127.0.0.1 and hairpin connections (a container reaching a published port of its own
  network through a host address) are masqueraded into B, so replies come back
  through the host.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from stackd.errors import HostError, UnavailableError
from stackd.hostnames import NFT_TABLE, nft_chain_prefix
from stackd.netbridge.model import ANY_ADDRESS

FAMILY = "inet"
# One host-wide lock for the changes roots can race on: the shared table's existence,
# picking subnets from a shared pool, claiming host ports.
HOST_LOCK = "/run/stackd.netbridge.lock"
CHAINS = ("forward", "prerouting", "output", "postrouting", "ports")


@dataclass(frozen=True, slots=True)
class BridgeRules:
    bridge: str
    subnet: str
    internal: bool


@dataclass(frozen=True, slots=True)
class DnatRule:
    host_ip: str  # "" for every local address
    host_port: int
    protocol: str
    container_ip: str
    container_port: int
    container_id: str
    group: str = ""  # replicas of one service share the port: one rule balances them
    ready: bool = True
    # A replica on another cluster node (the routing mesh, stackd/cluster/mesh.py):
    # its connections are masqueraded so its replies return through this host.
    remote: bool = False


def by_port(dnats: Iterable[DnatRule]) -> dict[tuple[int, str, str], list[DnatRule]]:
    """The rows of each published port, (host port, protocol, host address): one
    balanced rule each (all of a service's replicas, here and on other nodes)."""
    ports: dict[tuple[int, str, str], list[DnatRule]] = {}
    for d in dnats:
        ports.setdefault((d.host_port, d.protocol, d.host_ip), []).append(d)
    return ports


def backends(rules: Sequence[DnatRule]) -> list[DnatRule]:
    """Where new connections to one published port go: its ready backends, or all of
    them when none is ready (a lone container nobody judged ready still answers, as it
    did before readiness existed; a port whose replicas are all unready fails as they
    would). Sorted, so a rule is a pure function of the rows."""
    ready = [r for r in rules if r.ready]
    return sorted(ready or rules, key=lambda r: (r.container_ip, r.container_port,
                                                 r.container_id))


def _dnat_line(rules: Sequence[DnatRule]) -> str:
    """One rule per published port; several backends are picked round robin in the
    kernel (numgen inc over a map). Conntrack keeps an established connection on the
    backend it was given, so a backend leaving the map drains instead of breaking."""
    first = rules[0]
    match = f"ip daddr {first.host_ip} " if first.host_ip not in ANY_ADDRESS else ""
    to = backends(rules)
    if len(to) == 1:
        target = f"{to[0].container_ip}:{to[0].container_port}"
        comment = f"container {to[0].container_id}"
    else:
        pairs = ", ".join(f"{i} : {r.container_ip} . {r.container_port}"
                          for i, r in enumerate(to))
        target = f"numgen inc mod {len(to)} map {{ {pairs} }}"
        comment = f"service {first.group}"
    return (f"{match}{first.protocol} dport {first.host_port} dnat ip to {target} "
            f"comment {_q(comment[:127])}")


def _q(text: str) -> str:
    return json.dumps(text)  # nft accepts double-quoted strings with JSON-style escapes


def render(chain_id: str, bridges: Sequence[BridgeRules], dnats: Sequence[DnatRule]) -> str:
    """The nft script that makes this root's chains exactly match `bridges` and `dnats`."""
    p = nft_chain_prefix(chain_id)
    t = f"{FAMILY} {NFT_TABLE}"
    out = [f"add table {t}"]
    heads = {
        "forward": "type filter hook forward priority filter; policy accept;",
        "prerouting": "type nat hook prerouting priority dstnat; policy accept;",
        "output": "type nat hook output priority -100; policy accept;",
        "postrouting": "type nat hook postrouting priority srcnat; policy accept;",
        "ports": None,
    }
    for name in CHAINS:
        head = heads[name]
        out.append(f"add chain {t} {p}{name}" + (f" {{ {head} }}" if head else ""))
        out.append(f"flush chain {t} {p}{name}")
    ordered = sorted(bridges, key=lambda b: b.bridge)
    fw = f"add rule {t} {p}forward"
    post = f"add rule {t} {p}postrouting"
    # Every "into B" verdict comes before any "out of B" accept, or a packet from one
    # network to another would be accepted as egress before its drop is reached.
    for b in ordered:
        br = _q(b.bridge)
        out += [
            f"{fw} iifname {br} oifname {br} accept",
            f"{fw} oifname {br} ct state established,related accept",
            f"{fw} oifname {br} ct status dnat accept",
            f"{fw} oifname {br} drop",
        ]
    for b in ordered:
        br = _q(b.bridge)
        out.append(f"{fw} iifname {br} {'drop' if b.internal else 'accept'}")
        out += [
            f"{post} oifname {br} ip saddr 127.0.0.0/8 masquerade",
            f"{post} oifname {br} ip saddr {b.subnet} ct status dnat masquerade",
        ]
        if not b.internal:
            out.append(f"{post} oifname != {br} ip saddr {b.subnet} masquerade")
    remote = sorted({d.container_ip for d in dnats if d.remote})
    if remote:
        out.append(f"{post} ct status dnat ip daddr {{ {', '.join(remote)} }} masquerade")
    out.append(f"add rule {t} {p}prerouting fib daddr type local jump {p}ports")
    out.append(f"add rule {t} {p}output fib daddr type local jump {p}ports")
    ports = by_port(dnats)
    for key in sorted(ports):
        out.append(f"add rule {t} {p}ports {_dnat_line(ports[key])}")
    return "\n".join(out) + "\n"


def render_delete(chain_id: str, existing: Sequence[str]) -> str:
    """Deleting this root's chains: jumps first (flush all), then the chains."""
    p = nft_chain_prefix(chain_id)
    t = f"{FAMILY} {NFT_TABLE}"
    mine = [c for c in existing if c.startswith(p)]
    return "".join(f"flush chain {t} {c}\n" for c in mine) + \
        "".join(f"delete chain {t} {c}\n" for c in sorted(mine, key=lambda c: c == f"{p}ports"))


def nft(script: str | None = None, *args: str) -> str:
    cmd = ["nft", *args] + (["-f", "-"] if script is not None else [])
    try:
        proc = subprocess.run(cmd, input=script, capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise UnavailableError("the nft command is missing",
                               hint="install nftables (apt-get install nftables)") from None
    if proc.returncode != 0:
        raise HostError(f"nft {' '.join(args) or '-f -'} failed: {proc.stderr.strip()}",
                        hint="is the kernel's nf_tables available (modprobe nf_tables)?")
    return proc.stdout


def _table() -> list[dict[str, Any]] | None:
    """The objects of table `stackd` as nft's JSON lists them; None if there is no table."""
    proc = subprocess.run(["nft", "-j", "list", "table", FAMILY, NFT_TABLE],
                          capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        return None
    objects: list[dict[str, Any]] = json.loads(proc.stdout)["nftables"]
    return objects


def table_chains() -> list[str] | None:
    """Chain names in table `stackd`, or None when the table does not exist."""
    objects = _table()
    return None if objects is None else [o["chain"]["name"] for o in objects if "chain" in o]


def table_sets() -> list[str]:
    return [o["set"]["name"] for o in _table() or [] if "set" in o]


def foreign_dnats(chain_id: str) -> list[tuple[str, int, str, str]]:
    """(host_ip, host_port, protocol, comment) of every other root's published port."""
    mine = nft_chain_prefix(chain_id)
    found = []
    for o in _table() or []:
        rule = o.get("rule")
        if not rule or not rule["chain"].endswith("_ports") or rule["chain"].startswith(mine):
            continue
        host_ip, port, proto = "", None, None
        for e in rule["expr"]:
            m = e.get("match")
            if not m:
                continue
            payload = m["left"].get("payload", {})
            if payload.get("field") == "daddr":
                host_ip = str(m["right"])
            elif payload.get("field") == "dport" and isinstance(m["right"], int):
                port, proto = m["right"], payload.get("protocol", "tcp")
        if port is not None and proto is not None:
            found.append((host_ip, port, proto, rule.get("comment", rule["chain"])))
    return found


@contextmanager
def host_lock() -> Iterator[None]:
    """Blocks: take it from a worker thread."""
    with open(HOST_LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def apply(chain_id: str, bridges: Sequence[BridgeRules], dnats: Sequence[DnatRule]) -> None:
    """Make the root's chains match; with no bridge left, remove them (and an empty table).

    Blocking (runs nft); call from a worker thread, inside `host_lock`.
    """
    if bridges or dnats:
        nft(render(chain_id, bridges, dnats))
        return
    chains = table_chains()
    if chains is None:
        return
    script = render_delete(chain_id, chains)
    if script:
        nft(script)
    if not table_chains() and not table_sets():
        nft(f"delete table {FAMILY} {NFT_TABLE}\n")
