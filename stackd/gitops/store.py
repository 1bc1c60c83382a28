"""GitOps sources in the daemon's state database: they survive restarts.

One row per source: its spec (JSON; paths of the env and token files, never a
token), whether it is suspended, and what it applied: the commit of the stack's
current revision, written by `record_applied` inside the very transaction that
records the revision (state/revisions.py through DesiredStore.put), so a daemon
killed at any instant has either both or neither and never applies a commit twice.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from sqlite3 import Connection

from stackd.errors import AlreadyExistsError, NotFoundError
from stackd.gitops.git import Commit
from stackd.gitops.models import SourceSpec
from stackd.state.db import StateDB, register_schema

register_schema("gitops_revisions", """
CREATE TABLE IF NOT EXISTS gitops_revisions (
    project     TEXT NOT NULL,
    number      INTEGER NOT NULL,
    sha         TEXT NOT NULL,
    author_time INTEGER NOT NULL,
    message     TEXT NOT NULL,
    PRIMARY KEY (project, number)
)
""")

register_schema("gitops_sources", """
CREATE TABLE IF NOT EXISTS gitops_sources (
    name            TEXT PRIMARY KEY,
    spec            TEXT NOT NULL,
    suspended       INTEGER NOT NULL DEFAULT 0,
    created         REAL NOT NULL,
    applied_sha     TEXT NOT NULL DEFAULT '',
    applied_time    INTEGER NOT NULL DEFAULT 0,
    applied_message TEXT NOT NULL DEFAULT '',
    applied_gen     INTEGER NOT NULL DEFAULT 0,
    good_sha        TEXT NOT NULL DEFAULT '',
    good_time       INTEGER NOT NULL DEFAULT 0,
    good_message    TEXT NOT NULL DEFAULT '',
    good_gen        INTEGER NOT NULL DEFAULT 0,
    failed_sha      TEXT NOT NULL DEFAULT ''
)
""")


@dataclass(frozen=True)
class Source:
    spec: SourceSpec
    suspended: bool
    applied: Commit | None  # the commit the stack's revision `applied_gen` holds
    applied_gen: int
    good: Commit | None  # the newest commit whose revision converged
    good_gen: int
    failed_sha: str  # a commit rolled back after failing its health checks

    @property
    def name(self) -> str:
        return self.spec.name


class SourceStore:
    def __init__(self, db: StateDB) -> None:
        self.db = db

    def add(self, spec: SourceSpec) -> None:
        with self.db.transaction() as c:
            if c.execute("SELECT 1 FROM gitops_sources WHERE name=?",
                         (spec.name,)).fetchone():
                raise AlreadyExistsError(f"a gitops source named {spec.name!r} exists",
                                         hint="`stackd gitops remove` it first, or "
                                         "choose another name")
            c.execute("INSERT INTO gitops_sources (name, spec, created) VALUES (?, ?, ?)",
                      (spec.name, spec.model_dump_json(), time.time()))

    def remove(self, name: str) -> None:
        with self.db.transaction() as c:
            if c.execute("DELETE FROM gitops_sources WHERE name=?", (name,)).rowcount == 0:
                raise _missing(name)
            c.execute("DELETE FROM gitops_revisions WHERE project=?", (name,))

    def get(self, name: str) -> Source:
        row = self.db.conn.execute("SELECT * FROM gitops_sources WHERE name=?",
                                   (name,)).fetchone()
        if row is None:
            raise _missing(name)
        return _source(row)

    def all(self) -> list[Source]:
        return [_source(r) for r in self.db.conn.execute(
            "SELECT * FROM gitops_sources ORDER BY name")]

    def set_suspended(self, name: str, suspended: bool) -> None:
        with self.db.transaction() as c:
            if c.execute("UPDATE gitops_sources SET suspended=? WHERE name=?",
                         (int(suspended), name)).rowcount == 0:
                raise _missing(name)

    @staticmethod
    def record_applied(c: Connection, name: str, gen: int, commit: Commit) -> None:
        """Inside the revision's transaction: the commit its revision holds."""
        c.execute("UPDATE gitops_sources SET applied_sha=?, applied_time=?,"
                  " applied_message=?, applied_gen=? WHERE name=?",
                  (commit.sha, commit.author_time, commit.message, gen, name))
        c.execute("INSERT OR REPLACE INTO gitops_revisions (project, number, sha,"
                  " author_time, message) VALUES (?, ?, ?, ?, ?)",
                  (name, gen, commit.sha, commit.author_time, commit.message))
        # As many as the revisions kept: the rows of revisions gone go too.
        c.execute("DELETE FROM gitops_revisions WHERE project=? AND number NOT IN"
                  " (SELECT number FROM revisions WHERE project=?)", (name, name))

    def commits(self, name: str) -> dict[int, Commit]:
        """revision number → the commit it applied, for the stack's kept revisions."""
        rows = self.db.conn.execute(
            "SELECT number, sha, author_time, message FROM gitops_revisions"
            " WHERE project=? ORDER BY number", (name,)).fetchall()
        return {int(r["number"]): Commit(r["sha"], int(r["author_time"]), r["message"])
                for r in rows}

    def mark_good(self, name: str, commit: Commit, gen: int) -> None:
        with self.db.transaction() as c:
            c.execute("UPDATE gitops_sources SET good_sha=?, good_time=?, good_message=?,"
                      " good_gen=? WHERE name=?",
                      (commit.sha, commit.author_time, commit.message, gen, name))

    def mark_rolled_back(self, name: str, failed: str, back_to: Commit | None,
                         gen: int) -> None:
        """The applied commit failed its rollout and revision `gen` (a rollback to the
        last good commit, `back_to`) replaced it."""
        with self.db.transaction() as c:
            c.execute("UPDATE gitops_sources SET failed_sha=? WHERE name=?", (failed, name))
            if back_to is not None:
                self.record_applied(c, name, gen, back_to)

    def clear_failed(self, name: str) -> None:
        with self.db.transaction() as c:
            c.execute("UPDATE gitops_sources SET failed_sha='' WHERE name=?", (name,))


def _missing(name: str) -> NotFoundError:
    return NotFoundError(f"no gitops source named {name!r}",
                         hint="`stackd gitops ls` lists them")


def _source(row: object) -> Source:
    r: dict[str, object] = dict(row)  # type: ignore[call-overload]
    spec = SourceSpec.model_validate(json.loads(str(r["spec"])))
    sha = str(r["applied_sha"])
    return Source(
        spec=spec, suspended=bool(r["suspended"]),
        applied=Commit(sha, int(r["applied_time"]), str(r["applied_message"]))  # type: ignore[call-overload]
        if sha else None,
        applied_gen=int(r["applied_gen"]),  # type: ignore[call-overload]
        good=Commit(str(r["good_sha"]), int(r["good_time"]),  # type: ignore[call-overload]
                    str(r["good_message"])) if r["good_sha"] else None,
        good_gen=int(r["good_gen"]),  # type: ignore[call-overload]
        failed_sha=str(r["failed_sha"]))
