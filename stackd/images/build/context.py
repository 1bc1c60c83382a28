"""The build context: files a COPY/ADD may read, after `.dockerignore`, never outside the dir."""

from __future__ import annotations

import glob
import hashlib
import os
import stat
from pathlib import Path

from stackd.images.build.dockerignore import Pattern, is_ignored, parse_dockerignore


class BuildContext:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        ignore = self.root / ".dockerignore"
        self.patterns: list[Pattern] = (parse_dockerignore(ignore.read_text())
                                        if ignore.is_file() else [])

    def ignored(self, rel: str) -> bool:
        return bool(self.patterns) and is_ignored(rel, self.patterns)

    def match(self, source: str) -> list[str] | None:
        """Context-relative paths `source` names (a glob allowed); None if it leaves the context."""
        norm = os.path.normpath("/" + source).lstrip("/")
        if norm.startswith(".."):
            return None
        if norm in ("", "."):
            return [""]
        if glob.has_magic(norm):
            hits = sorted(os.path.relpath(p, self.root)
                          for p in glob.glob(str(self.root / norm), include_hidden=True))
        else:
            hits = [norm] if os.path.lexists(self.root / norm) else []
        for h in hits:
            # A symlinked directory on the way must not lead out of the context.
            parent = os.path.realpath(os.path.dirname(self.root / h))
            if parent != str(self.root) and not parent.startswith(str(self.root) + os.sep):
                return None
        return [h for h in hits if not self.ignored(h)]

    def host(self, rel: str) -> Path:
        return self.root / rel if rel else self.root

    def walk(self, rel: str) -> list[str]:
        """`rel` and everything under it that is not ignored, parents first, sorted.
        Without a frame per level: a context may nest past the recursion limit."""
        out: list[str] = []
        pending = [rel]  # the next one last
        while pending:
            here = pending.pop()
            out.append(here)
            path = self.host(here)
            if path.is_dir() and not path.is_symlink():
                with os.scandir(path) as it:
                    names = sorted((e.name for e in it), reverse=True)
                pending += [c for c in (f"{here}/{n}" if here else n for n in names)
                            if not self.ignored(c)]
        return out

    def digest(self, rels: list[str]) -> str:
        """Hash of what a copy of `rels` would produce: names, kinds, modes, content."""
        h = hashlib.sha256()
        for top in rels:
            for rel in self.walk(top):
                p = self.host(rel)
                st = os.lstat(p)
                h.update(f"{rel}\0{stat.S_IFMT(st.st_mode)}\0{stat.S_IMODE(st.st_mode)}\0".encode())
                if stat.S_ISLNK(st.st_mode):
                    h.update(os.readlink(p).encode())
                elif stat.S_ISREG(st.st_mode):
                    with open(p, "rb") as f:
                        while chunk := f.read(1 << 20):
                            h.update(chunk)
        return h.hexdigest()
