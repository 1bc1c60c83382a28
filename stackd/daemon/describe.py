"""A stack as its applied revision holds it, for a reader: its services (replicas as
its apply options scale them,
image, what each depends on, the service's own definition), the image digests the
revision pinned, and its dependency graph as Graphviz source — drawn by the same
`scheduler.render` that `stackd graph` uses, from the revision instead of the files.
"""

from __future__ import annotations

import json
from typing import Any

from stackd.daemon.revision import stack_from_json
from stackd.scheduler import build_graph
from stackd.scheduler.from_stack import from_stack
from stackd.scheduler.render import edge_label, render
from stackd.state.revisions import Revision


def describe(revision: Revision) -> dict[str, Any]:
    """{project, revision, cause, created, dot, services: [...], images: {ref: digest}}.
    Blocking (JSON and pydantic over the whole stack): run it in a worker thread."""
    if revision.stack is None:
        raise ValueError("a revision of a down holds no stack")
    stack = stack_from_json(revision.stack)
    graph = build_graph(from_stack(stack))
    raw = json.loads(revision.stack).get("services", {})
    # `up --scale` and `stackd scale` are apply options of the revision, not its stack.
    scale = json.loads(revision.options or "{}").get("scale") or {}
    services = []
    for node in from_stack(stack):
        svc = stack.services[node.name]
        services.append({
            "name": node.name, "replicas": int(scale.get(node.name, node.replicas)),
            "image": svc.image,
            "depends_on": [{"target": t, "why": edge_label(graph, node.name, t)}
                           for t in sorted(graph.successors(node.name))],
            "definition": raw.get(node.name, {}),
        })
    return {"project": revision.project, "revision": revision.number,
            "cause": revision.cause, "created": revision.created,
            "dot": render(graph, "dot", stack.name), "services": services,
            "images": dict(revision.images)}
