"""Layer snapshots: each layer unpacked once into `snapshots/<diff_id hex>/`, an overlay lower dir.

Unpacking happens in a private `.tmp-…` dir under a per-layer lock; only a layer
whose uncompressed stream hashed to the expected diff_id is renamed into place, so a
directory under its final name is always complete and correct.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from stackd.dirplacement import spread_subdirectories
from stackd.filemodes import private_dir
from stackd.images.digests import hex_of
from stackd.images.errors import DigestMismatchError
from stackd.images.locks import flocked
from stackd.images.unpack import unpack_layer
from stackd.trees import remove_tree


class SnapshotStore:
    def __init__(self, root: Path, locks: Path) -> None:
        self.root = root
        self.locks = locks
        # Each layer's tree in a block group of its own (see stackd.dirplacement).
        spread_subdirectories(private_dir(root, parents=True))

    def path(self, diff_id: str) -> Path:
        return self.root / hex_of(diff_id)

    def has(self, diff_id: str) -> bool:
        return self.path(diff_id).is_dir()

    def temp_dir(self) -> Path:
        tmp = self.root / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir(mode=0o755)
        return tmp

    def unpack(self, blob_path: Path, diff_id: str) -> Path:
        """Unpack the layer blob at `blob_path` (once) and return its snapshot dir."""
        final = self.path(diff_id)
        if final.is_dir():
            return final
        with flocked(self.locks / f"snap-{hex_of(diff_id)}.lock"):
            if final.is_dir():
                return final
            tmp = self.temp_dir()
            try:
                with open(blob_path, "rb") as src:
                    result = unpack_layer(src, tmp)
                if result.diff_id != diff_id:
                    raise DigestMismatchError(
                        f"layer {blob_path.name[:12]}: uncompressed content hashes to "
                        f"{result.diff_id}, but the image config says {diff_id}",
                        hint="the image is corrupt or was tampered with; pull it again",
                    )
                os.rename(tmp, final)
            except BaseException:
                remove_tree(tmp, ignore_errors=True)
                raise
        return final

    def commit_dir(self, tmp: Path, diff_id: str) -> Path:
        """Adopt an already laid out dir (a build step's result) as the snapshot for diff_id."""
        final = self.path(diff_id)
        with flocked(self.locks / f"snap-{hex_of(diff_id)}.lock"):
            if final.is_dir():
                remove_tree(tmp, ignore_errors=True)
            else:
                os.rename(tmp, final)
        return final

    def all(self) -> list[str]:
        return sorted("sha256:" + p.name for p in self.root.iterdir()
                      if len(p.name) == 64 and p.is_dir())

    def delete(self, diff_id: str) -> int:
        """Remove a snapshot; returns the bytes its files held."""
        p = self.path(diff_id)
        # Rename first so a crash halfway through never leaves a partial dir under its name.
        doomed = self.root / f".tmp-{uuid.uuid4().hex}"
        try:
            os.rename(p, doomed)
        except FileNotFoundError:
            return 0
        return remove_tree(doomed, ignore_errors=True)

    def clear_temps(self) -> int:
        n = 0
        for p in self.root.iterdir():
            if p.name.startswith(".tmp-"):
                remove_tree(p, ignore_errors=True)
                n += 1
        return n
