"""References (name:tag → manifest digest) and blob sources, kept in one JSON file.

Every change is read-modify-write under an exclusive lock and lands by renaming a
fully written temp file over `index.json`, so readers see the old or the new index,
never a torn one.
"""

from __future__ import annotations

import builtins
import json
import os
import uuid
from pathlib import Path
from typing import Any

from stackd.filemodes import open_private
from stackd.images.locks import flocked


class RefIndex:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = path.with_suffix(".lock")

    def _read(self) -> dict[str, Any]:
        data: dict[str, Any]
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            data = {}
        data.setdefault("refs", {})
        data.setdefault("sources", {})
        return data

    def _write(self, data: dict[str, Any]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}")
        with os.fdopen(open_private(tmp, os.O_WRONLY | os.O_TRUNC), "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, self.path)

    def refs(self) -> dict[str, str]:
        return dict(self._read()["refs"])

    def get(self, name: str) -> str | None:
        digest: str | None = self._read()["refs"].get(name)
        return digest

    def set(self, name: str, manifest_digest: str) -> None:
        with flocked(self.lock):
            data = self._read()
            data["refs"][name] = manifest_digest
            self._write(data)

    def delete(self, name: str) -> bool:
        with flocked(self.lock):
            data = self._read()
            found = data["refs"].pop(name, None) is not None
            if found:
                self._write(data)
            return found

    def sources(self, blob: str) -> list[str]:
        return list(self._read()["sources"].get(blob, []))

    def add_sources(self, repository: str, blobs: list[str]) -> None:
        """Remember which repositories hold a blob, for cross-repository mounts on push."""
        with flocked(self.lock):
            data = self._read()
            changed = False
            for b in blobs:
                have = data["sources"].setdefault(b, [])
                if repository not in have:
                    have.append(repository)
                    changed = True
            if changed:
                self._write(data)

    def forget_sources(self, blobs: builtins.set[str]) -> None:
        with flocked(self.lock):
            data = self._read()
            for b in blobs:
                data["sources"].pop(b, None)
            self._write(data)
