"""The config hash: one digest over everything whose change needs a new container.

Like Compose's `ServiceHash`, it is computed over a chosen set of fields, and the
fields left out are named here on purpose. A per-field digest is kept beside the
whole one (on the container's labels) so a plan can say *what* changed
(`environment changed: LOG_LEVEL`) without keeping the old stack file around.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

# Each of these, changed, means the running container is no longer what the file says.
# The order is the order causes are printed in.
HASHED_FIELDS: tuple[str, ...] = (
    "image",  # the resolved digest, so a re-pulled tag with new content counts
    "entrypoint",
    "command",
    "environment",  # after merging the image's env, env_file *contents*, environment:
    "working_dir",
    "user",
    "mounts",  # binds, named volumes, tmpfs
    "files",  # configs and secrets: the content, target, uid/gid/mode
    "networks",  # names, aliases, fixed addresses
    "ports",
    "resources",
    "security",  # privileged, cap_add/cap_drop, seccomp, sysctls, read_only
    "healthcheck",  # Compose recreates on a healthcheck change; so do we
    "process",  # init, tty, rlimits, hostname, stop_signal, stop_grace
    "labels",
)

# Deliberately not hashed: changing these never recreates a container.
#   scale / deploy.replicas — adds or removes slots, leaving the others alone
#   depends_on, links ordering — only the order of starting
#   profiles — only whether the service is selected
#   restart / deploy.restart_policy / x-stackd — applied live by the supervisor
#   pull_policy, build — how the image is obtained; its digest is what counts
#   container_name index, project-wide comments, x-* extensions other than the above
IGNORED_FIELDS: tuple[str, ...] = (
    "scale",
    "deploy.replicas",
    "depends_on",
    "profiles",
    "restart",
    "deploy.restart_policy",
    "x-stackd",
    "pull_policy",
    "build",
)

# What the label `io.stackd.config-fields` holds: "field=digest8,field=digest8,…"
FIELD_DIGEST_LEN = 8


@dataclass(frozen=True, slots=True)
class ConfigHash:
    digest: str  # sha256 hex of all the fields
    fields: Mapping[str, str]  # field → short digest of that field alone

    def fields_label(self) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted(self.fields.items()))

    @staticmethod
    def parse_fields_label(text: str) -> dict[str, str]:
        """The inverse of `fields_label`; malformed parts are skipped, not fatal."""
        out: dict[str, str] = {}
        for part in text.split(","):
            key, sep, value = part.partition("=")
            if sep and key:
                out[key] = value
        return out

    def changed_fields(self, old_fields: Mapping[str, str]) -> tuple[str, ...]:
        """Fields whose digest differs from `old_fields`, in HASHED_FIELDS order."""
        return tuple(f for f in HASHED_FIELDS if self.fields.get(f) != old_fields.get(f))


def _canonical(value: object) -> bytes:
    # sort_keys + compact separators: the same value always hashes the same, whatever
    # order a dict was built in. default=str turns tuples-of-paths etc. into text.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def config_hash(inputs: Mapping[str, object]) -> ConfigHash:
    """Hash exactly HASHED_FIELDS of `inputs` (a missing key is a bug, not a default)."""
    missing = [f for f in HASHED_FIELDS if f not in inputs]
    extra = sorted(set(inputs) - set(HASHED_FIELDS))
    if missing or extra:
        raise ValueError(f"config_hash inputs: missing {missing}, unexpected {extra}")
    fields = {
        f: hashlib.sha256(_canonical(inputs[f])).hexdigest()[:FIELD_DIGEST_LEN]
        for f in HASHED_FIELDS
    }
    whole = hashlib.sha256(_canonical([[f, inputs[f]] for f in HASHED_FIELDS])).hexdigest()
    return ConfigHash(digest=whole, fields=fields)
