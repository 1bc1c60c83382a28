"""The names stackd gives to things on the host (see DESIGN "Names on the host").

Everything here is pure. Each name carries the state root's id (`Roots.id`) so two
state roots on one host — two test runs, say — never touch each other's devices,
cgroups or nft chains, and `tools/leaks` can tell whose a leftover is.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

DEVICE_PREFIX = "stk"
NFT_TABLE = "stackd"
CGROUP_PARENT = "stackd"
IFNAMSIZ = 15  # the kernel's limit on interface names, without the NUL


def _short(key: str, n: int) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:n]


def device_name(root_id: str, kind: str, key: str) -> str:
    """`stk` + root id (4) + kind letter (1) + hash of key (7): exactly 15 characters.

    kind: "b" bridge, "v" host end of a veth, "p" peer end before it moves into a
    container, "x" an overlay network's VXLAN device, "t" anything a test makes.
    """
    if len(kind) != 1:
        raise ValueError(f"device kind must be one letter, got {kind!r}")
    name = f"{DEVICE_PREFIX}{root_id}{kind}{_short(key, IFNAMSIZ - 4 - len(root_id))}"
    assert len(name) <= IFNAMSIZ
    return name


def cgroup_relpath(root_id: str, container_id: str) -> str:
    """Path of a container's cgroup below each hierarchy's mount point."""
    return f"{CGROUP_PARENT}/{root_id}/{container_id}"


def nft_chain_prefix(chain_id: str) -> str:
    """Chains in the shared `stackd` table belong to one root by this prefix; `chain_id`
    is `Roots.chain_id` (12 hex, starting with the 4 of the root id)."""
    return f"r{chain_id}_"


def container_name(project: str, service: str, index: int, fixed: str | None = None) -> str:
    """Compose's convention: `<project>-<service>-<n>`; a service's `container_name`
    (then it has one replica) is used as it is."""
    return fixed or f"{project}-{service}-{index}"


# Names a stack gives to host objects (networks, volumes, containers), as Docker
# allows them for volumes and containers. They become directory names, database
# keys, DNS names: no '/', no '..', no leading dot or dash.
OBJECT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
MAX_OBJECT_NAME = 110  # a container's runtime id adds "-<8 hex>" within 128


def reserved_labels(keys: Iterable[str]) -> list[str]:
    """The labels among `keys` only stackd may set."""
    return sorted(k for k in keys if k.startswith(LABEL_PREFIX))


def is_object_name(name: str) -> bool:
    return len(name) <= MAX_OBJECT_NAME and OBJECT_NAME.fullmatch(name) is not None


# stackd finds, counts, names and cleans up containers by the labels under this prefix:
# a user's label there (a stack file's, `run -l`) could make it act on what is not
# theirs — another stack's volume set apart as a container's own, say.
LABEL_PREFIX = "io.stackd."
LABEL_PROJECT = "io.stackd.project"
LABEL_SERVICE = "io.stackd.service"
LABEL_INDEX = "io.stackd.index"
LABEL_CONFIG_HASH = "io.stackd.config-hash"
# The slot's anonymous volumes (comma-separated): a `down` or `rm` that removes the
# container sets them apart, so the next container of the slot starts with new ones.
LABEL_ANONYMOUS_VOLUMES = "io.stackd.anonymous-volumes"
# A `stackd run SERVICE` container: of the project (ps shows it, down removes it) but
# never one of its replica slots, so the reconciler neither counts nor removes it.
LABEL_ONEOFF = "io.stackd.oneoff"
# The image as the stack or `run` names it (`ps`'s IMAGE, Docker's Config.Image): set
# after the config hash is taken, so it never makes a container differ by itself.
LABEL_IMAGE = "io.stackd.image"
