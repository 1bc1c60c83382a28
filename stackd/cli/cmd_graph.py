"""`stackd graph`: draw the stack's dependency graph as text, Graphviz dot or Mermaid.

Works on the stack files alone (no daemon): load → scheduler graph → render. With
`--output x.svg` (or .png, .pdf) Graphviz's `dot` draws the picture.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from stackd.errors import HostError, UnavailableError, UsageError

HELP = "Show the services' dependency graph (text tree, dot or mermaid)"

FORMATS = ("text", "dot", "mermaid")
IMAGE_SUFFIXES = (".svg", ".png", ".pdf")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("services", nargs="*", metavar="SERVICE",
                        help="show only these services and what they depend on")
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="text (default): an indented tree; dot: Graphviz; "
                             "mermaid: a Mermaid flowchart")
    parser.add_argument("--output", "-o", metavar="FILE", default=None,
                        help="write to FILE instead of standard output; a .svg, .png or "
                             ".pdf FILE is drawn with Graphviz's dot")


def run(args: argparse.Namespace) -> int:
    from stackd.cli.main import load_stack
    from stackd.scheduler import build_graph, select_for_up
    from stackd.scheduler.from_stack import from_stack
    from stackd.scheduler.render import render

    stack = load_stack(args)  # prints the loader's warnings
    graph = build_graph(from_stack(stack))
    for warning in graph.graph["warnings"]:
        print(f"stackd: warning: {warning}", file=sys.stderr)
    if args.services:
        graph = select_for_up(graph, args.services)

    out = Path(args.output) if args.output else None
    if out is not None and out.suffix.lower() in IMAGE_SUFFIXES:
        if args.format not in (None, "dot"):
            raise UsageError(f"{out.name} is a picture, drawn from the dot format, not "
                             f"from {args.format}",
                             hint=f"drop --format {args.format}, or write a text file")
        draw(render(graph, "dot", stack.name), out)
        return 0

    text = render(graph, args.format or "text", stack.name)
    if out is None:
        sys.stdout.write(text)
    else:
        try:
            out.write_text(text)
        except OSError as exc:
            raise HostError(f"cannot write {out}: {exc.strerror}") from exc
    return 0


def draw(dot_source: str, out: Path) -> None:
    """Have Graphviz render `dot_source` into `out`, in the format its suffix names."""
    dot = shutil.which("dot")
    if dot is None:
        raise UnavailableError(
            f"cannot draw {out.name}: Graphviz's `dot` command is not installed",
            hint="install graphviz (apt-get install graphviz), or use --format dot and "
                 "render it elsewhere")
    result = subprocess.run([dot, f"-T{out.suffix.lower().lstrip('.')}", "-o", str(out)],
                            input=dot_source, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise HostError(f"graphviz could not draw {out}: {result.stderr.strip()}")
