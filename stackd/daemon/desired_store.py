"""The daemon's durable record of desired stacks: what was applied, and what is being removed.

Written before the controller is told, so a daemon killed at any instant finds on
start every stack it must keep (or finish removing) and converges it. A removal is a
row in phase `removing` until the reconcile that tears the stack down succeeds —
Kubernetes' finalizer pattern — so a crash mid-`down` still finishes the `down`.

Each row points at the stack's current revision (state/revisions.py): its
`generation` is that revision's number, taken from the project's counter in the same
transaction, so numbers keep growing across `down` and `up` and a waiter on
generation N never mistakes an older reconcile's outcome for N's. The stored request
carries no shell environment: what a reconcile needs of it is in the revision.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from sqlite3 import Connection

from stackd.daemon.models import ApplyRequest, RemoveOptions
from stackd.state.db import StateDB, register_schema
from stackd.state.revisions import NewRevision, RevisionStore

DB_NAME = "stackd.db"

register_schema("daemon_stacks", """
CREATE TABLE IF NOT EXISTS daemon_stacks (
    project    TEXT PRIMARY KEY,
    generation INTEGER NOT NULL,
    phase      TEXT NOT NULL CHECK (phase IN ('active', 'removing')),
    request    TEXT NOT NULL,
    remove     TEXT,
    updated    REAL NOT NULL
)
""")


@dataclass(frozen=True)
class DesiredStack:
    project: str
    generation: int
    phase: str
    request: ApplyRequest
    remove: RemoveOptions | None


def db_path(state_root: Path) -> Path:
    return state_root / DB_NAME


def without_environ(request: ApplyRequest) -> ApplyRequest:
    """The request as stored: the client's shell environment may hold secrets, and the
    revision keeps the few variables the stack takes values from."""
    return request.model_copy(update={
        "source": request.source.model_copy(update={"environ": {}})})


class DesiredStore:
    def __init__(self, db: StateDB, revisions: RevisionStore | None = None) -> None:
        self.db = db
        self.revisions = revisions or RevisionStore(db)

    def put(self, project: str, request: ApplyRequest, revision: NewRevision,
            also: Callable[[Connection, int], None] | None = None) -> int:
        """Record `request` as the desired state of `project`, as a new revision; returns
        its number (the new generation). `also(c, number)` writes in the same
        transaction (a GitOps source records the commit it applied: never one without
        the other)."""
        request = without_environ(request)
        with self.db.transaction() as c:
            row = c.execute("SELECT generation FROM daemon_stacks WHERE project=?",
                            (project,)).fetchone()
            gen = self.revisions.next_number(c, project, row["generation"] if row else 0)
            self.revisions.insert(c, project, gen, revision)
            c.execute(
                "INSERT INTO daemon_stacks (project, generation, phase, request, remove, updated)"
                " VALUES (?, ?, 'active', ?, NULL, ?)"
                " ON CONFLICT(project) DO UPDATE SET generation=excluded.generation,"
                " phase='active', request=excluded.request, remove=NULL,"
                " updated=excluded.updated",
                (project, gen, request.model_dump_json(), time.time()))
            if also is not None:
                also(c, gen)
        return gen

    def mark_removing(self, project: str, options: RemoveOptions,
                      request: ApplyRequest | None) -> int:
        with self.db.transaction() as c:
            row = c.execute("SELECT generation, request FROM daemon_stacks WHERE project=?",
                            (project,)).fetchone()
            gen = self.revisions.next_number(c, project, row["generation"] if row else 0)
            req = row["request"] if row else without_environ(
                request or _empty_request(project)).model_dump_json()
            self.revisions.insert(c, project, gen, NewRevision(
                cause="down", options=options.model_dump_json(),
                source=json.dumps(json.loads(req)["source"]), stack=None))
            c.execute(
                "INSERT INTO daemon_stacks (project, generation, phase, request, remove, updated)"
                " VALUES (?, ?, 'removing', ?, ?, ?)"
                " ON CONFLICT(project) DO UPDATE SET generation=excluded.generation,"
                " phase='removing', remove=excluded.remove, updated=excluded.updated",
                (project, gen, req, options.model_dump_json(), time.time()))
        return gen

    def forget(self, project: str, generation: int) -> bool:
        """Drop a removed stack's row, unless it was applied again meanwhile. Its
        revisions and its counter stay: numbers never repeat, `history` still lists."""
        with self.db.transaction() as c:
            cur = c.execute("DELETE FROM daemon_stacks WHERE project=? AND generation=?"
                            " AND phase='removing'", (project, generation))
            if cur.rowcount > 0:
                self.revisions.consume(project, generation, c)
            return cur.rowcount > 0

    def get(self, project: str) -> DesiredStack | None:
        row = self.db.conn.execute("SELECT * FROM daemon_stacks WHERE project=?",
                                   (project,)).fetchone()
        return _row(row) if row else None

    def all(self) -> list[DesiredStack]:
        rows = self.db.conn.execute("SELECT * FROM daemon_stacks ORDER BY project").fetchall()
        return [_row(r) for r in rows]

    def projects(self) -> list[str]:
        return [r["project"] for r in
                self.db.conn.execute("SELECT project FROM daemon_stacks ORDER BY project")]


def _empty_request(project: str) -> ApplyRequest:
    from stackd.daemon.models import StackSource

    return ApplyRequest(source=StackSource(project_name=project))


def _row(row: object) -> DesiredStack:
    r = row  # sqlite3.Row
    remove = r["remove"]  # type: ignore[index]
    return DesiredStack(
        project=r["project"],  # type: ignore[index]
        generation=r["generation"],  # type: ignore[index]
        phase=r["phase"],  # type: ignore[index]
        request=ApplyRequest.model_validate(json.loads(r["request"])),  # type: ignore[index]
        remove=RemoveOptions.model_validate(json.loads(remove)) if remove else None,
    )
