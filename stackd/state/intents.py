"""The reconciler's durable record (its `StatePort`): intents and holds.

Intents: each apply step, written before it acts and marked done after. An apply
killed at any instant leaves its step's row pending; the next reconcile reads the
pending rows (`pending`) to finish an interrupted remove or undo an interrupted
create, then closes them.

Holds: containers a user stopped. A restart policy never starts a held container,
not after a resync and not after a daemon restart, until a user starts it again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from stackd.state.db import StateDB, register_schema

register_schema("intents", """
CREATE TABLE IF NOT EXISTS intents (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    project      TEXT NOT NULL,
    verb         TEXT NOT NULL,
    resource     TEXT NOT NULL,
    container_id TEXT,
    line         TEXT NOT NULL,
    started      REAL NOT NULL,
    finished     REAL
);
CREATE INDEX IF NOT EXISTS intents_pending ON intents (project) WHERE finished IS NULL;
CREATE TABLE IF NOT EXISTS holds (
    container_id TEXT PRIMARY KEY,
    project      TEXT NOT NULL,
    since        REAL NOT NULL
)
""")

# Finished intents are history, not state; keep a little for `stackd events`-style
# forensics and drop the rest so the table does not grow without bound.
KEEP_FINISHED = 1000


@dataclass(frozen=True, slots=True)
class Intent:
    id: int
    project: str
    verb: str  # create, recreate, start, stop, remove (the plan action's verb)
    resource: str  # web-2, network demo_default
    container_id: str | None
    line: str  # the plan line


class IntentLog:
    def __init__(self, db: StateDB) -> None:
        self.db = db

    def begin(self, project: str, verb: str, resource: str, container_id: str | None,
              line: str) -> int:
        with self.db.transaction() as c:
            cur = c.execute(
                "INSERT INTO intents (project, verb, resource, container_id, line, started)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (project, verb, resource, container_id, line, time.time()))
            return int(cur.lastrowid or 0)

    def done(self, intent_id: int) -> None:
        with self.db.transaction() as c:
            c.execute("UPDATE intents SET finished=? WHERE id=? AND finished IS NULL",
                      (time.time(), intent_id))
            c.execute("DELETE FROM intents WHERE finished IS NOT NULL AND id <="
                      " (SELECT MAX(id) FROM intents) - ?", (KEEP_FINISHED,))

    def pending(self, project: str) -> list[Intent]:
        rows = self.db.conn.execute(
            "SELECT id, project, verb, resource, container_id, line FROM intents"
            " WHERE project=? AND finished IS NULL ORDER BY id", (project,)).fetchall()
        return [Intent(r["id"], r["project"], r["verb"], r["resource"],
                              r["container_id"], r["line"]) for r in rows]

    def hold(self, project: str, container_id: str) -> None:
        with self.db.transaction() as c:
            c.execute("INSERT OR IGNORE INTO holds (container_id, project, since)"
                      " VALUES (?, ?, ?)", (container_id, project, time.time()))

    def unhold(self, container_id: str) -> None:
        with self.db.transaction() as c:
            c.execute("DELETE FROM holds WHERE container_id=?", (container_id,))

    def held(self, project: str) -> list[str]:
        rows = self.db.conn.execute(
            "SELECT container_id FROM holds WHERE project=? ORDER BY container_id",
            (project,)).fetchall()
        return [r["container_id"] for r in rows]
