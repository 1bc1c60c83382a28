"""The dependency graph drawn for a person: an indented tree, Graphviz dot, or Mermaid.

Edges are labelled with the fields that made them (`depends_on: service_healthy`,
`links`, …); optional (`required: false`) edges are dashed in dot and Mermaid.
"""

from __future__ import annotations

from collections.abc import Callable

import networkx as nx

from stackd.scheduler.graph import dependencies_of

FORMATS = ("text", "dot", "mermaid")


def edge_label(graph: nx.DiGraph, u: str, v: str) -> str:
    return "; ".join(d.describe() for d in dependencies_of(graph, u, v))


def to_text(graph: nx.DiGraph) -> str:
    """Each service nothing depends on, with what it depends on indented beneath it.

    A service reached again is printed without its dependencies and marked `(see
    above)`, so a diamond-shaped stack doesn't grow exponentially.
    """
    lines: list[str] = []
    expanded: set[str] = set()
    for root in sorted(n for n in graph if graph.in_degree(n) == 0):
        lines.append(root)
        expanded.add(root)
        # (service, the prefix of its dependencies' lines, those left to print): a
        # stack, not a frame per level — a chain of depends_on may be thousands long.
        pending = [(root, "", sorted(graph.successors(root)))]
        while pending:
            name, prefix, children = pending[-1]
            if not children:
                pending.pop()
                continue
            child = children.pop(0)
            last = not children
            seen = child in expanded and graph.out_degree(child) > 0
            lines.append(f"{prefix}{'└── ' if last else '├── '}{child}  "
                         f"[{edge_label(graph, name, child)}]"
                         + ("  (see above)" if seen else ""))
            if not seen:
                expanded.add(child)
                pending.append((child, prefix + ("    " if last else "│   "),
                                sorted(graph.successors(child))))
    return "\n".join(lines) + ("\n" if lines else "")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(graph: nx.DiGraph, title: str = "stack") -> str:
    """Graphviz source; `dot -Tsvg` renders it. Arrows point from a service to what it
    depends on."""
    out = [f"digraph {_quote(title)} {{", "  rankdir=TB;", "  node [shape=box];"]
    out += [f"  {_quote(n)};" for n in sorted(graph)]
    for u, v in sorted(graph.edges):
        style = "" if graph.edges[u, v]["required"] else ", style=dashed"
        out.append(f"  {_quote(u)} -> {_quote(v)} "
                   f"[label={_quote(edge_label(graph, u, v))}{style}];")
    out.append("}")
    return "\n".join(out) + "\n"


def to_mermaid(graph: nx.DiGraph, title: str = "stack") -> str:
    """A Mermaid flowchart. Service names become labels of generated ids, because
    Mermaid ids can't hold every character a service name may."""
    ids = {name: f"s{i}" for i, name in enumerate(sorted(graph))}
    out = ["---", f"title: {title}", "---", "flowchart TD"]
    out += [f'  {ids[n]}["{n}"]' for n in sorted(graph)]
    for u, v in sorted(graph.edges):
        arrow = "-->" if graph.edges[u, v]["required"] else "-.->"
        label = edge_label(graph, u, v).replace('"', "#quot;")
        out.append(f'  {ids[u]} {arrow}|"{label}"| {ids[v]}')
    return "\n".join(out) + "\n"


RENDERERS: dict[str, Callable[[nx.DiGraph, str], str]] = {
    "text": lambda g, _title: to_text(g),
    "dot": to_dot,
    "mermaid": to_mermaid,
}


def render(graph: nx.DiGraph, fmt: str, title: str = "stack") -> str:
    """The graph in one of FORMATS."""
    return RENDERERS[fmt](graph, title)
