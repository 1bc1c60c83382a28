"""The cluster's key layout under the store's prefix, in one place.

    nodes/<node>                  the node's record (resources, labels, availability)
    alive/<node>                  bound to the node's lease: present while it is up
    leader                        bound to the leader's lease: its node name
    stacks/<project>              what to run: the stack's services as slots need them
    assign/<project>/<slot>       the node one slot runs on (slot = <service>-<index>)
    ipam/<network>/<block>        the node holding that address block (a/b as a_b)
    ca                            the cluster CA's certificate and key (cluster/pki.py)
    status/<project>/<slot>       bound to the running node's lease: the slot's summary
    overlay/networks/<network>    an overlay network's subnet, VXLAN VNI and UDP port
    overlay/endpoints/<network>/<node>/<ip>
                                  bound to the node's lease: one container's address there
    volumes/<project>/<volume>    the node holding a named (not shared) volume's data
    unplaced/<project>            why the leader cannot place the stack now
    removed/<project>             left by `down -v`: every node removes its volumes too
"""

from __future__ import annotations

import re

from stackd.errors import UsageError

NODES = "nodes/"
ALIVE = "alive/"
LEADER = "leader"
STACKS = "stacks/"
ASSIGN = "assign/"
IPAM = "ipam/"
CA = "ca"
STATUS = "status/"
OVERLAY_NETWORKS = "overlay/networks/"
OVERLAY_ENDPOINTS = "overlay/endpoints/"
VOLUMES = "volumes/"
UNPLACED = "unplaced/"
REMOVED = "removed/"

# Names become key segments: no "/" (it would nest), nothing a shell or a log mangles.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


def check_name(kind: str, name: str) -> str:
    if not _NAME.fullmatch(name):
        raise UsageError(f"{kind} name {name!r} is not valid",
                         hint="use letters, digits, '_', '.', '-' (at most 63, first a "
                              "letter or digit)")
    return name


def node(name: str) -> str:
    return NODES + check_name("node", name)


def alive(name: str) -> str:
    return ALIVE + check_name("node", name)


def stack(project: str) -> str:
    return STACKS + check_name("project", project)


def assignments(project: str) -> str:
    return f"{ASSIGN}{check_name('project', project)}/"


def assignment(project: str, slot: str) -> str:
    return assignments(project) + slot


def statuses(project: str) -> str:
    return f"{STATUS}{check_name('project', project)}/"


def status(project: str, slot: str) -> str:
    return statuses(project) + slot  # <service>-<index>, as assignment() has it


def overlay_network(network: str) -> str:
    return OVERLAY_NETWORKS + check_name("network", network)


def overlay_endpoints(network: str, node: str | None = None) -> str:
    """Every endpoint of `network`, or only those `node` published."""
    out = f"{OVERLAY_ENDPOINTS}{check_name('network', network)}/"
    return out if node is None else f"{out}{check_name('node', node)}/"


def overlay_endpoint(network: str, node: str, ip: str) -> str:
    return overlay_endpoints(network, node) + ip


def volumes(project: str) -> str:
    return f"{VOLUMES}{check_name('project', project)}/"


def volume(project: str, name: str) -> str:
    return volumes(project) + check_name("volume", name)


def unplaced(project: str) -> str:
    return UNPLACED + check_name("project", project)


def removed(project: str) -> str:
    return REMOVED + check_name("project", project)


def tail(key: str, prefix: str) -> str:
    """The part of `key` after `prefix` (a key this module made)."""
    assert key.startswith(prefix), (key, prefix)
    return key[len(prefix):]
