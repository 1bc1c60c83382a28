"""Named volumes: directories under `$STACKD_ROOT/volumes/<name>/data`, recorded in the db.

Created on first use by the stack that mounts them, kept across `down`, removed only
by `down -v` (or `volume rm`). The row says which project made the volume, so `down
-v` of one stack never removes another's. This is the reconciler's `VolumePort`.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from pathlib import Path

import trio

from stackd.errors import ConflictError, HostError, UsageError
from stackd.filemodes import private_dir, write_private
from stackd.runtime.mountusers import mount_users
from stackd.state.db import StateDB, register_schema
from stackd.trees import remove_tree

register_schema("volumes", """
CREATE TABLE IF NOT EXISTS volumes (
    name    TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    created REAL NOT NULL
)
""")

# Those of `volumes` that are a container's own (image VOLUME, `- /path`), made by a
# stack or set apart when their container went: `volume prune` removes these unused,
# a named volume only with --all (Docker's rule since 23.0). A table of its own, so a
# store made before it needs no change.
register_schema("anonymous_volumes", """
CREATE TABLE IF NOT EXISTS anonymous_volumes (
    name    TEXT PRIMARY KEY
)
""")

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
VOLUME_DATA_MODE = 0o755


class VolumeStore:
    def __init__(self, db: StateDB, state_root: Path) -> None:
        self.db = db
        self.root = state_root / "volumes"
        # configs/secrets that need their own uid/gid/mode (bind-mounted read-only)
        self.files = state_root / "files"

    def path(self, name: str) -> str:
        if not NAME.fullmatch(name):
            raise UsageError(f"volume name {name!r} is not valid",
                             hint="use letters, digits, '_', '.' and '-'")
        return str(self.root / name / "data")

    def name_of(self, path: str) -> str | None:
        """The volume whose directory `path` is (`path`'s inverse), or None."""
        p = Path(path)
        if p.name == "data" and p.parent.parent == self.root and NAME.fullmatch(p.parent.name):
            return p.parent.name
        return None

    async def volumes(self, project: str) -> list[str]:
        rows = self.db.conn.execute("SELECT name FROM volumes WHERE project=? ORDER BY name",
                                    (project,)).fetchall()
        return [r["name"] for r in rows if Path(self.path(r["name"])).is_dir()]

    async def detach(self, name: str) -> str | None:
        old = Path(self.path(name)).parent
        new_name = f"{name}.{secrets.token_hex(6)}"
        new = Path(self.path(new_name)).parent

        def move() -> bool:
            try:
                os.rename(old, new)
            except FileNotFoundError:
                return False
            return True

        try:
            moved = await trio.to_thread.run_sync(move)
        except OSError as err:
            raise HostError(f"cannot set volume {name} apart: {err.strerror}") from err
        with self.db.transaction() as c:
            if moved:
                c.execute("UPDATE volumes SET name=? WHERE name=?", (new_name, name))
                # Set apart is what Docker calls dangling: anonymous, whatever it was.
                c.execute("DELETE FROM anonymous_volumes WHERE name=?", (name,))
                c.execute("INSERT OR IGNORE INTO anonymous_volumes (name) VALUES (?)",
                          (new_name,))
            else:
                c.execute("DELETE FROM volumes WHERE name=?", (name,))
                c.execute("DELETE FROM anonymous_volumes WHERE name=?", (name,))
        return new_name if moved else None

    async def exists(self, name: str) -> bool:
        return await trio.to_thread.run_sync(os.path.isdir, self.path(name))

    async def ensure_volume(self, project: str, name: str, *, anonymous: bool = False
                            ) -> str:
        path = Path(self.path(name))
        try:
            await trio.to_thread.run_sync(self._make, path)
        except OSError as err:
            raise HostError(f"cannot create volume {name} at {path}: {err.strerror}") from err
        with self.db.transaction() as c:
            c.execute("INSERT OR IGNORE INTO volumes (name, project, created) VALUES (?, ?, ?)",
                      (name, project, time.time()))
            if anonymous:
                c.execute("INSERT OR IGNORE INTO anonymous_volumes (name) VALUES (?)", (name,))
        return str(path)

    def anonymous(self) -> set[str]:
        """The names of the volumes that are a container's own."""
        rows = self.db.conn.execute("SELECT name FROM anonymous_volumes").fetchall()
        return {r["name"] for r in rows}

    def _make(self, data: Path) -> None:
        """volumes/ and volumes/<name> are root's only; data is what the container
        mounts, so a new one is 0755 (seeding may give it the image's mode, and the
        container may change it later: an existing one is left as it is)."""
        private_dir(self.root, parents=True)
        private_dir(data.parent)
        try:
            os.mkdir(data, VOLUME_DATA_MODE)
            os.chmod(data, VOLUME_DATA_MODE)
        except FileExistsError:
            pass

    async def remove_volume(self, name: str) -> None:
        top = Path(self.path(name)).parent
        # Asked of the kernel: a container whose record is unreadable (so no stack
        # counts it) may still have the volume mounted; it is never removed from under it.
        users = await trio.to_thread.run_sync(mount_users, Path(self.path(name)))
        if users:
            raise ConflictError(f"volume {name} is in use by {', '.join(users)}: not removed",
                                hint="stop and remove what uses it first (`stackd ps -a "
                                "--all-projects`), then remove the volume again")
        try:
            await trio.to_thread.run_sync(lambda: remove_tree(top, ignore_errors=False)
                                          if top.exists() else None)
        except OSError as err:
            raise HostError(f"cannot remove volume {name} at {top}: {err.strerror}",
                            hint="is a container still using it?") from err
        with self.db.transaction() as c:
            c.execute("DELETE FROM volumes WHERE name=?", (name,))
            c.execute("DELETE FROM anonymous_volumes WHERE name=?", (name,))

    def file_path(self, digest: str) -> str:
        return str(self.files / digest)

    async def make_host_dir(self, path: str) -> None:
        """A bind source the stack names and the host lacks, as Docker makes it: what is
        there (a file, a directory, a link) is left as it is."""
        def make() -> None:
            if not os.path.lexists(path):
                os.makedirs(path, mode=0o755, exist_ok=True)

        try:
            await trio.to_thread.run_sync(make)
        except OSError as err:
            raise HostError(f"cannot create the bind mount source {path}: {err.strerror}",
                            hint="create it first, or fix the path") from err

    async def write_file(self, path: str, content: bytes, uid: int, gid: int, mode: int
                         ) -> None:
        """Content-addressed, so an existing file is already right; else write then rename."""
        target = Path(path)

        def write() -> None:
            if target.exists():
                return
            private_dir(target.parent, parents=True)
            tmp = target.with_name(f".{target.name}.tmp")
            # Never wider than asked: 0600 until chown, then the stack's mode (after
            # chown, which would clear set-id bits).
            write_private(tmp, content)
            os.chown(tmp, uid, gid)
            os.chmod(tmp, mode)
            os.replace(tmp, target)

        try:
            await trio.to_thread.run_sync(write)
        except OSError as err:
            raise HostError(f"cannot write {path}: {err.strerror}") from err
