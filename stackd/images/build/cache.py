"""The build cache: a step's cache key → the image state after that step.

A key hashes everything a step's result depends on: the state before it (parent key),
the instruction with its arguments expanded, the build args and env in effect, and for
COPY/ADD the content of every source file. The state after the step (layers, config,
history) is stored as JSON under `build-cache/<key>.json`, written atomically. A hit is
used only while all its layer blobs and snapshots are still in the store.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stackd.images.store import ImageStore


class BuildCache:
    def __init__(self, store: ImageStore) -> None:
        self.store = store
        self.dir = store.root / "build-cache"
        self.dir.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            state = json.loads((self.dir / f"{key}.json").read_text())
        except (FileNotFoundError, ValueError):
            return None
        return state if self._complete(state) else None

    def put(self, key: str, state: dict[str, Any]) -> None:
        tmp = self.dir / f".{key}.{uuid.uuid4().hex}"
        tmp.write_text(json.dumps(state, sort_keys=True))
        os.rename(tmp, self.dir / f"{key}.json")

    def _complete(self, state: dict[str, Any]) -> bool:
        try:
            return all(self.store.blobs.has(layer["digest"])
                       and self.store.snapshots.has(diff_id)
                       for layer, diff_id in state.get("layers", []))
        except (KeyError, TypeError, ValueError):
            return False

    def forget_all(self) -> int:
        """Forget every step (`stackd builder prune`); → how many."""
        n = 0
        for p in self.dir.glob("*.json"):
            p.unlink(missing_ok=True)
            n += 1
        return n

    def forget_missing(self) -> int:
        n = 0
        for p in self.dir.glob("*.json"):
            try:
                state = json.loads(p.read_text())
            except ValueError:
                state = {}
            if not self._complete(state) or not state:
                p.unlink(missing_ok=True)
                n += 1
        for p in self.dir.glob(".*"):
            p.unlink(missing_ok=True)
        return n
