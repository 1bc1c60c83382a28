"""The dependency rules of DESIGN.md, checked on the source rather than trusted."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "stackd"

IO_PACKAGES = ("stackd.runtime", "stackd.images", "stackd.netbridge", "stackd.state",
               "stackd.daemon", "stackd.gitops", "stackd.cli")
IO_LIBRARIES = ("pyroute2", "httpx", "sqlite3", "subprocess", "socket")


def imports_of(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((PKG / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(PKG.parent))] = names
    return found


def offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{file} imports {name}"
        for file, names in imports_of(package).items()
        for name in names
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    )


@pytest.mark.parametrize("package", ["spec", "scheduler"])
def test_pure_packages_do_no_io(package: str) -> None:
    assert offenders(package, IO_PACKAGES + IO_LIBRARIES) == []


def test_runtime_knows_nothing_of_stacks() -> None:
    assert offenders("runtime", ("stackd.spec", "stackd.scheduler", "stackd.reconciler")) == []


def test_only_netbridge_speaks_netlink() -> None:
    others = [p.name for p in PKG.iterdir() if p.is_dir() and p.name not in ("netbridge",)
              and (p / "__init__.py").exists()]
    assert [o for pkg in others for o in offenders(pkg, ("pyroute2",))] == []


def test_layering_check_sees_imports() -> None:
    # Guard against a check that cannot fail: the CLI does import stackd modules.
    assert any("stackd.errors" in names or "argparse" in names
               for names in imports_of("cli").values())
