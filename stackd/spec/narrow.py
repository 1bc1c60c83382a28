"""A stack cut down to some of its services and what they use, as `config` shows it.

Compose's `config` (and `config SERVICE…`) prints only the networks, volumes, configs
and secrets some printed service refers to; `up` creates no others either, so the
printed stack is the one that would run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from stackd.spec.model import Service, Stack


def narrowed(stack: Stack, services: Iterable[str] | None = None) -> Stack:
    """`services` (every service when None; names not in the stack are ignored: the
    caller has checked them) and the top-level resources they use."""
    chosen = set(stack.services) if services is None else set(services)
    kept = {n: s for n, s in stack.services.items() if n in chosen}
    networks: set[str] = set()
    volumes: set[str] = set()
    configs: set[str] = set()
    secrets: set[str] = set()
    for svc in kept.values():
        networks.update(svc.networks)
        volumes.update(_volume_keys(svc))
        configs.update(ref.source for ref in svc.configs)
        secrets.update(ref.source for ref in svc.secrets)
        if svc.build is not None:
            secrets.update(ref.source for ref in svc.build.secrets)
    return stack.model_copy(update={
        "services": kept,
        "networks": {k: v for k, v in stack.networks.items() if k in networks},
        "volumes": {k: v for k, v in stack.volumes.items() if k in volumes},
        "configs": {k: v for k, v in stack.configs.items() if k in configs},
        "secrets": {k: v for k, v in stack.secrets.items() if k in secrets},
    })


def _volume_keys(svc: Service) -> Iterable[str]:
    return (v.source for v in svc.volumes if v.type == "volume" and v.source is not None)


def definition_hash(service: Service) -> str:
    """Compose's `config --hash`: a digest of what the service's containers are made
    from, so it changes when they would be recreated for a change of the file, and
    not for what does not reach a container (build, pull_policy, the replica count,
    depends_on, profiles)."""
    doc = service.model_dump(mode="json", exclude_defaults=True)
    for key in ("build", "pull_policy", "scale", "depends_on", "profiles"):
        doc.pop(key, None)
    deploy = doc.get("deploy")
    if isinstance(deploy, dict):
        deploy.pop("replicas", None)
        if not deploy:
            del doc["deploy"]
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
