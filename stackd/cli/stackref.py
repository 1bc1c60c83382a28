"""Which stack a command means: the global options (-f, -p, --project-directory,
--env-file, --profile) as the daemon's StackSource, and the project name."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def source_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The StackSource body for the API; the daemon reads the files (same host)."""
    files = getattr(args, "files", None)
    content = None
    if files and "-" in files:
        content = sys.stdin.read()
    return {
        "files": list(files) if files else None,
        "content": content,
        "cwd": os.getcwd(),
        "project_name": getattr(args, "project_name", None),
        "project_directory": getattr(args, "project_directory", None),
        "env_files": getattr(args, "env_files", None),
        "profiles": getattr(args, "profiles", None),
        "environ": dict(os.environ),
    }


def project_of(args: argparse.Namespace) -> str:
    """-p if given, else the name the stack files give (read here, as compose does)."""
    if getattr(args, "project_name", None):
        # Compose's rule, as stackd.spec.discovery.normalize_project_name has it: that
        # module's package imports the whole loader, a quarter second of start-up.
        import re

        return re.sub(r"[^a-z0-9_-]+", "", args.project_name.lower()).lstrip("_-")
    from stackd.spec import LoadOptions, load

    stack = load(LoadOptions(
        files=getattr(args, "files", None),
        project_directory=getattr(args, "project_directory", None),
        env_files=getattr(args, "env_files", None),
        profiles=getattr(args, "profiles", None),
        on_warning=lambda _w: None))
    return stack.name
