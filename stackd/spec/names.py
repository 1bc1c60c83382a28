"""Names a stack gives to host objects: networks, volumes, fixed container names.

Each becomes a directory name, a database key or a DNS name, so it must be a plain
name (hostnames.is_object_name), checked where it was written. A `container_name`
names exactly one container: it cannot go with more than one replica, and two
services cannot share one (compared without case: DNS does not tell them apart).
"""

from __future__ import annotations

from stackd.errors import SpecError
from stackd.hostnames import MAX_OBJECT_NAME, is_object_name
from stackd.spec.model import Stack

HINT = (f"use up to {MAX_OBJECT_NAME} letters, digits, '_', '.' and '-', starting with a "
        "letter or digit")


def check_names(stack: Stack) -> None:
    for kind, section in (("network", stack.networks), ("volume", stack.volumes)):
        for key, obj in section.items():
            if not is_object_name(key):
                raise SpecError(f"{kind} name {key!r} is not valid",
                                location=stack.location_of((f"{kind}s", key)), hint=HINT)
            if obj.name is not None and not is_object_name(obj.name):
                raise SpecError(f"{kind} {key!r}: name {obj.name!r} is not valid",
                                location=stack.location_of((f"{kind}s", key, "name")),
                                hint=HINT)
    taken: dict[str, str] = {}
    for service, svc in stack.services.items():
        name = svc.container_name
        if name is None:
            continue
        where = stack.location_of(("services", service, "container_name"))
        if not is_object_name(name):
            raise SpecError(f"service {service!r}: container_name {name!r} is not valid",
                            location=where, hint=HINT)
        if svc.replicas > 1:
            raise SpecError(
                f"service {service!r}: container_name {name!r} names one container, but "
                f"the service wants {svc.replicas} replicas", location=where,
                hint="remove container_name, or scale the service to 1")
        other = taken.setdefault(name.lower(), service)
        if other != service:
            raise SpecError(
                f"service {service!r}: container_name {name!r} is already the name of "
                f"service {other!r}'s container", location=where,
                hint="give each service its own container_name")
