"""Named volumes: directories under `$STACKD_ROOT/volumes/<name>/data`, recorded in the db.

Created on first use by the stack that mounts them, kept across `down`, removed only
by `down -v` (or `volume rm`). The row says which project made the volume, so `down
-v` of one stack never removes another's. This is the reconciler's `VolumePort`.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import trio

from stackd.errors import HostError, UsageError
from stackd.state.db import StateDB, register_schema

register_schema("volumes", """
CREATE TABLE IF NOT EXISTS volumes (
    name    TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    created REAL NOT NULL
)
""")

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class VolumeStore:
    def __init__(self, db: StateDB, state_root: Path) -> None:
        self.db = db
        self.root = state_root / "volumes"

    def path(self, name: str) -> str:
        if not NAME.fullmatch(name):
            raise UsageError(f"volume name {name!r} is not valid",
                             hint="use letters, digits, '_', '.' and '-'")
        return str(self.root / name / "data")

    async def volumes(self, project: str) -> list[str]:
        rows = self.db.conn.execute("SELECT name FROM volumes WHERE project=? ORDER BY name",
                                    (project,)).fetchall()
        return [r["name"] for r in rows if Path(self.path(r["name"])).is_dir()]

    async def ensure_volume(self, project: str, name: str) -> str:
        path = Path(self.path(name))
        try:
            await trio.to_thread.run_sync(lambda: path.mkdir(parents=True, exist_ok=True))
        except OSError as err:
            raise HostError(f"cannot create volume {name} at {path}: {err.strerror}") from err
        with self.db.transaction() as c:
            c.execute("INSERT OR IGNORE INTO volumes (name, project, created) VALUES (?, ?, ?)",
                      (name, project, time.time()))
        return str(path)

    async def remove_volume(self, name: str) -> None:
        top = Path(self.path(name)).parent
        try:
            await trio.to_thread.run_sync(lambda: shutil.rmtree(top, ignore_errors=False)
                                          if top.exists() else None)
        except OSError as err:
            raise HostError(f"cannot remove volume {name} at {top}: {err.strerror}",
                            hint="is a container still using it?") from err
        with self.db.transaction() as c:
            c.execute("DELETE FROM volumes WHERE name=?", (name,))
