"""The config hash: one digest over everything whose change needs a new container.

Like Compose's `ServiceHash`, it is computed from the *result* — the service's
`ContainerSpec` before a slot's id, name and stackd labels are set, plus the resolved
image, the networks joined, the ports published and the healthcheck — minus a named
list of exclusions. A field added to `ContainerSpec` (or to any model inside it) is
therefore hashed by default; leaving one out is a decision written down in `EXCLUDED`.

A per-field digest is kept beside the whole one (on the container's labels) so a plan
can say *what* changed (`environment changed: LOG_LEVEL`) without keeping the old
stack file around.

What the stack file has but the spec does not is never hashed, by construction:
scale/deploy.replicas (slots are added or removed, others untouched), depends_on and
links ordering (a link's alias is hashed: it is the linking container's network
attachment's), profiles, restart/deploy.restart_policy/x-stackd (the supervisor
applies them live), pull_policy and build (the image digest is what counts).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from stackd.netbridge.model import Attachment, PortBinding
from stackd.reconciler.health import HealthCheck
from stackd.runtime.containerspec import ContainerSpec

# Paths into the hashed document that are left out on purpose, and why.
EXCLUDED: Mapping[str, str] = {
    "spec.id": "derived from the hash itself, per slot",
    "spec.name": "set per slot (<project>-<service>-<n>)",
    "spec.layers": "host paths of the image's snapshots; image.id/digest stand for them",
}

# The spec's models whose fields are hashed (and reported) one by one, so a plan names
# `environment` rather than `process`.
_SPLIT = ("process",)

# Fields added after containers were made with specs that lacked them, with the value
# that means unset: left out while unset, so those containers keep their hash (a
# stackd upgrade recreates nothing; a changed value recreates them). A dotted path
# reaches into a model that is hashed whole (`resources`); `[]` into each item of a
# list hashed whole (`mounts[].subpath`: every mount's).
_HASHED_WHEN_SET: Mapping[str, object] = {
    "process.oom_score_adj": None,
    "resources.memory_swappiness": None,
    "resources.oom_kill_disable": False,
    "resources.blkio_weight": None,
    "resources.blkio_devices": [],
    "device_cgroup_rules": [],
    "annotations": {},
    "mounts[].uid": None,
    "mounts[].gid": None,
    "mounts[].noexec": False,
    "mounts[].subpath": "",
    "mounts[].seed_plain": False,
    "ports[].meshed": True,
    "networks[].links": (),
}

# What the label `io.stackd.config-fields` holds: "field=digest8,field=digest8,…"
FIELD_DIGEST_LEN = 8


@dataclass(frozen=True, slots=True)
class ConfigHash:
    digest: str  # sha256 hex of all the fields
    fields: Mapping[str, str]  # field → short digest of that field alone, in document order

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
        """Fields whose digest differs from `old_fields`: this hash's order, then fields
        only the old one had (a field since excluded or removed)."""
        mine = tuple(f for f in self.fields if self.fields[f] != old_fields.get(f))
        gone = tuple(sorted(f for f in old_fields if f not in self.fields))
        return mine + gone


def hashed_document(spec: ContainerSpec, *, image: object,
                    attachments: Sequence[Attachment] = (),
                    ports: Sequence[PortBinding] = (),
                    healthcheck: HealthCheck | None = None,
                    container_name: str | None = None) -> dict[str, object]:
    """Field → value: everything the hash covers, with `EXCLUDED` taken out."""
    dumped: dict[str, Any] = spec.model_dump(mode="json")
    doc: dict[str, object] = {"image": image}
    for key, value in dumped.items():
        if key in _SPLIT:
            doc.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            doc[key] = value
    # The order of environment entries is not configuration: KEY=value pairs compare
    # as a mapping, as Compose compares them.
    env = doc.get("process.env")
    if isinstance(env, list):
        doc["process.env"] = dict(str(kv).partition("=")[::2] for kv in env)
    doc["networks"] = [asdict(a) for a in attachments]
    doc["ports"] = [asdict(p) for p in ports]
    doc["healthcheck"] = asdict(healthcheck) if healthcheck is not None else None
    if container_name:  # the slot's name is excluded; a fixed one is configuration
        doc["container_name"] = container_name
    for path in EXCLUDED:
        _drop(doc, path)
    for path, unset in _HASHED_WHEN_SET.items():
        _drop_if(doc, path, unset)
    return doc


def _drop_if(doc: dict[str, Any], path: str, unset: object) -> None:
    """Leave out the value at `path` (a key of the document, one inside a model hashed
    whole, or one of each item of a list: `key[].field`) when it is `unset`."""
    listed, _, field = path.partition("[].")
    if field:
        items = doc.get(listed)
        if isinstance(items, list):
            doc[listed] = [{k: v for k, v in item.items() if not (k == field and v == unset)}
                           if isinstance(item, dict) else item for item in items]
        return
    if path in doc:
        if doc[path] == unset:
            del doc[path]
        return
    top, _, rest = path.partition(".")
    inner = doc.get(top)
    if rest and isinstance(inner, dict) and inner.get(rest, unset) == unset:
        doc[top] = {k: v for k, v in inner.items() if k != rest}


def _drop(doc: dict[str, object], path: str) -> None:
    # "spec.x" is the spec's field x at the top of the document ("spec.process.env"
    # the split field "process.env"); any other path is a top-level key as it stands.
    key = path.removeprefix("spec.")
    if key not in doc:
        raise ValueError(f"EXCLUDED names {path!r}, which is not in the hashed document")
    del doc[key]


def _canonical(value: object) -> bytes:
    # sort_keys + compact separators: the same value always hashes the same, whatever
    # order a dict was built in. default=str turns tuples-of-paths etc. into text.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def config_hash(spec: ContainerSpec, *, image: object,
                attachments: Sequence[Attachment] = (),
                ports: Sequence[PortBinding] = (),
                healthcheck: HealthCheck | None = None,
                container_name: str | None = None) -> ConfigHash:
    """The hash of one service's containers (the same for every slot)."""
    return digest_of(hashed_document(spec, image=image, attachments=attachments,
                                     ports=ports, healthcheck=healthcheck,
                                     container_name=container_name))


def digest_of(doc: Mapping[str, object]) -> ConfigHash:
    fields = {f: hashlib.sha256(_canonical(v)).hexdigest()[:FIELD_DIGEST_LEN]
              for f, v in doc.items()}
    whole = hashlib.sha256(_canonical(sorted(doc.items()))).hexdigest()
    return ConfigHash(digest=whole, fields=fields)
