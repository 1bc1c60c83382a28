"""The dependency rules of docs/design.md, checked on the source rather than trusted.

Every module under stackd/ belongs to a unit (a top-level package or module), and
each unit may import only the units `MAY_IMPORT` lists for it, plus the shared
leaves (`errors`, `roots`, `hostnames`). Every import counts: absolute and relative,
`import a.b` and `from a import b`, at module level or inside a function, and under
`if TYPE_CHECKING:` (a type-only edge is still an edge). A unit this table does not
know fails the test, so a new package has to be placed in the layering on purpose.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "stackd"

# Leaf modules every unit may use: errors, names, starting a per-root helper process
# (runtime monitor, DNS resolver) in its own session, saying a repeated failure once,
# creating files and directories root-only whatever the umask, where the filesystem
# puts new directories, removing a tree of any depth, showing a container's text
# without control sequences.
SHARED = ("errors", "roots", "hostnames", "detached", "repeats", "filemodes", "dirplacement",
          "trees", "printable", "outfile", "__init__")

# unit → the units (or `unit.module` prefixes, for a narrow edge) it may import.
# Dependencies point downward: cli → daemon → reconciler → (scheduler, spec) and the
# data types of runtime / netbridge; daemon wires the real packages together.
MAY_IMPORT: dict[str, tuple[str, ...]] = {
    "errors": (),
    "roots": (),
    "hostnames": (),
    "detached": (),
    "repeats": (),
    "filemodes": (),
    "dirplacement": (),
    "trees": (),
    "printable": (),
    "outfile": (),
    "spec": (),
    "scheduler": ("spec",),
    "state": (),
    "runtime": (),
    # Network allocations live in the state store.
    "netbridge": ("state",),
    # Only the builder's RUN step runs a container (images.build → runtime, below).
    "images": (),
    "reconciler": ("scheduler", "spec.model", "spec.image_names", "spec.buildsecrets", "spec.tmpfs",
                   "runtime.containerspec", "runtime.signals", "netbridge.model"),
    "hostinfo": ("scheduler.nodes",),
    "leaks": ("leaks",),
    # Cluster mode: the etcd store and the leader's placement over the pure scheduler.
    "cluster": ("scheduler", "spec"),
    "daemon": ("reconciler", "scheduler", "spec", "runtime", "images", "netbridge", "state",
               "hostinfo", "cluster"),
    # GitOps sits above the daemon: it submits revisions to the engine and serves its
    # routes and webhook as a daemon extension; nothing below imports it.
    "gitops": ("daemon", "reconciler", "spec", "state"),
    # The CLI reaches the host through the daemon (its API, or daemon.host_verbs for the
    # verbs that must work without one); stack files and image verbs it handles itself.
    "cli": ("daemon", "gitops", "spec", "scheduler", "images", "cluster"),
    # The web console is a client of the daemon's API, as the CLI is; only the CLI's
    # `stackd ui` verb imports it.
    "ui": ("cli.client", "daemon.wire", "daemon.paths", "daemon.rows"),
    "__main__": ("cli",),
    "__init__": (),
}

# Narrower edges, by module prefix: (importer, imported) → why.
NARROW: dict[tuple[str, str], str] = {
    ("images.build", "runtime"): "a RUN step runs in a container, as buildkit runs runc",
    ("leaks.reclaim", "runtime.cgroups"): "the shared cgroup parent is removed by its rule",
    ("leaks.reclaim", "daemon.pidfile"): "a root's live daemon, stopped before anything "
    "is removed, is the one holding its pid file's lock",
    ("leaks.reclaim", "daemon.paths"): "where a root's pid file is",
    ("netbridge.netns", "runtime.syscalls"): "stackd's libc bindings live in one module",
    ("netbridge.udpbatch", "runtime.syscalls"): "stackd's libc bindings live in one module",
    ("images.content", "runtime.syscalls"): "stackd's libc bindings live in one module",
    ("netbridge.socketlb", "runtime.ebpf"): "one eBPF assembler and loader, the runtime's "
    "device filter's and the socket balancer's",
    ("netbridge.socketlb", "runtime.cgroups"): "where cgroup2 is mounted is read in one place",
    ("images.platform", "scheduler.platform"): "one pure table of machine names → "
    "platforms, for the host the scheduler places on and the index a pull picks from",
    ("cli.cmd_run", "reconciler.restart"): "`run --restart` is checked by the one parser of "
    "restart policies before anything is sent",
    ("cli.cmd_ui", "ui"): "`stackd ui` starts the web console, which nothing else imports",
    ("cluster.overlay", "netbridge.overlayplan"): "the overlay agent hands netbridge the "
    "pure values of its interface (leases, peers)",
    ("cluster.overlay", "netbridge.model"): "the network spec an overlay is allocated for",
    ("state.volumes", "runtime.mountusers"): "a volume a live process has mounted is never "
    "removed, whatever the records say: the kernel's mount tables tell",
}

IO_LIBRARIES = ("pyroute2", "httpx", "sqlite3", "subprocess", "socket", "pyroute2")


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def _is_module(root: Path, dotted: str) -> bool:
    rel = Path(*dotted.split("."))
    return (root / rel).with_suffix(".py").is_file() or (root / rel / "__init__.py").is_file()


def imports(root: Path, path: Path) -> Iterator[tuple[int, str]]:
    """(line, module relative to the package root) for each stackd import in `path`;
    other imports come back as their absolute name with a leading `:`."""
    name = _module_name(root, path)
    is_package = path.name == "__init__.py"
    here = name.split(".") if is_package else name.split(".")[:-1]
    top = root.name
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _classify(root, top, node.lineno, alias.name, ())
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - (node.level - 1)] if node.level > 1 else here
                if node.level - 1 > len(here):
                    base = []
                module = ".".join([top, *base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            yield from _classify(root, top, node.lineno, module,
                                 tuple(a.name for a in node.names))


def _classify(root: Path, top: str, line: int, module: str, names: tuple[str, ...]
              ) -> Iterator[tuple[int, str]]:
    if module != top and not module.startswith(top + "."):
        yield line, ":" + module
        return
    inner = module[len(top) + 1:]
    # `from stackd.runtime import containerspec` imports the module runtime.containerspec.
    subs = [f"{inner}.{n}" if inner else n for n in names]
    modules = [s for s in subs if _is_module(root, s)]
    if modules:
        yield from ((line, m) for m in modules)
    if len(modules) < len(subs) or not names:
        yield line, inner or "__init__"


def _unit(dotted: str) -> str:
    return dotted.split(".")[0]


def _allowed(importer: str, imported: str) -> bool:
    unit = _unit(importer)
    target = _unit(imported)
    if target == unit or target in SHARED:
        return True
    for rule in MAY_IMPORT[unit]:
        if imported == rule or imported.startswith(rule + "."):
            return True
    return any(
        (importer == src or importer.startswith(src + ".")) and
        (imported == dst or imported.startswith(dst + "."))
        for src, dst in NARROW)


def violations(root: Path = PKG) -> list[str]:
    out: list[str] = []
    for path in sorted(root.rglob("*.py")):
        importer = _module_name(root, path)
        if _unit(importer) not in MAY_IMPORT:
            out.append(f"{importer}: no layering rule for {_unit(importer)!r}")
            continue
        for line, imported in imports(root, path):
            if imported.startswith(":"):
                lib = imported[1:].split(".")[0]
                if _unit(importer) in ("spec", "scheduler") and lib in IO_LIBRARIES:
                    out.append(f"{importer}:{line} imports {lib} (pure package)")
                if lib == "pyroute2" and _unit(importer) != "netbridge":
                    out.append(f"{importer}:{line} imports pyroute2 (only netbridge may)")
            elif not _allowed(importer, imported):
                out.append(f"{importer}:{line} imports {imported}")
    return sorted(out)


def test_stackd_follows_the_layering() -> None:
    assert violations() == []


def _tree(tmp: Path, files: dict[str, str]) -> Path:
    root = tmp / "stackd"
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    for d in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        (d / "__init__.py").touch()
    return root


def test_the_check_reports_relative_and_type_only_imports(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "runtime/runtime.py": "",
        "spec/bad.py": "from ..runtime import runtime\n",
        "spec/worse.py": "from .. import daemon\n",
        "scheduler/typed.py": ("from typing import TYPE_CHECKING\n"
                               "if TYPE_CHECKING:\n    from stackd.state import db\n"),
        "daemon/ok.py": "from ..spec import bad\nfrom . import ok\n",
        "cli/up.py": "def run():\n    import stackd.runtime.runtime\n",
        "images/pull.py": "from stackd.runtime.runtime import Runtime\n",
        "images/build/run.py": "from stackd.runtime import runtime\n",
        "spec/lib.py": "import subprocess\n",
        "state/nl.py": "from pyroute2 import IPRoute\n",
        "shiny/new.py": "",
    })
    (root / "state" / "db.py").write_text("")
    (root / "daemon" / "__init__.py").write_text("")
    assert violations(root) == [
        "cli.up:2 imports runtime.runtime",
        "images.pull:1 imports runtime.runtime",
        "scheduler.typed:3 imports state.db",
        "shiny.new: no layering rule for 'shiny'",
        "shiny: no layering rule for 'shiny'",
        "spec.bad:1 imports runtime.runtime",
        "spec.lib:1 imports subprocess (pure package)",
        "spec.worse:1 imports daemon",
        "state.nl:1 imports pyroute2 (only netbridge may)",
    ]


def test_every_unit_of_stackd_has_a_rule() -> None:
    units = {_unit(_module_name(PKG, p)) for p in PKG.rglob("*.py")}
    assert units <= set(MAY_IMPORT)
    assert {"spec", "runtime", "cli", "daemon", "leaks"} <= units
