"""The reconciler reaches the host only through its ports: checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[3] / "stackd" / "reconciler"

# Pure data it may import from other packages: the runtime's input contract, netbridge's
# value types, the spec model, the scheduler, errors and host names.
ALLOWED_STACKD = ("stackd.errors", "stackd.hostnames", "stackd.runtime.containerspec",
                  "stackd.runtime.signals",
                  "stackd.netbridge.model", "stackd.spec.model", "stackd.spec.image_names",
                  "stackd.spec.buildsecrets", "stackd.spec.tmpfs", "stackd.scheduler",
                  "stackd.reconciler")
FORBIDDEN_LIBS = ("sqlite3", "subprocess", "socket", "pyroute2", "httpx", "os", "shutil")


def runtime_imports(path: Path) -> set[str]:
    """Imports that execute (those under `if TYPE_CHECKING:` only type-check)."""
    tree = ast.parse(path.read_text(), str(path))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            skip.update(id(n) for n in ast.walk(node))
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module if node.module != "stackd" else
                      f"stackd.{node.names[0].name}")
    return names


def test_reconciler_imports_only_pure_modules() -> None:
    offenders = sorted(
        f"{p.name}: {name}"
        for p in sorted(PKG.glob("*.py"))
        for name in runtime_imports(p)
        if (name.startswith("stackd") and not name.startswith(ALLOWED_STACKD))
        or name.split(".")[0] in FORBIDDEN_LIBS
    )
    assert offenders == []


def test_the_check_sees_type_only_imports_as_type_only() -> None:
    # daemon/conformance.py names the real Runtime, but only for mypy.
    conformance = PKG.parent / "daemon" / "conformance.py"
    assert "stackd.runtime.runtime" not in runtime_imports(conformance)
    assert "stackd.netbridge.model" in runtime_imports(PKG / "ports.py")
