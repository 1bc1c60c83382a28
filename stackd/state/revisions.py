"""Applied revisions: the immutable, numbered desired states of each stack.

A revision is what one `up` (or `down`; later a GitOps sync or a rollback) applied:
the resolved stack as JSON, the options it was applied with, every file it read
(path, kind, sha256), the image digests its first reconcile resolved, and whether
its one-shot options (force recreate, build, pull always) have been honoured.

Numbers come from a per-project counter whose row outlives the stack (`down`
forgets the stack, never the counter), so a number is never used twice for one
project name. The last `keep` revisions of a project are kept.

File contents a container is given (configs, secrets, environment-sourced values)
are not in the database: they are content-addressed blobs, files of mode 0600 in a
0700 directory under the state root, written ingest → fsync → rename so a
half-written blob is never visible. The database holds only their digests. A blob
no kept revision refers to is removed by `collect`.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from sqlite3 import Connection
from typing import Any, Literal

from stackd.errors import NotFoundError
from stackd.state.db import StateDB, register_schema

KEEP = 10  # revisions kept per project
BLOB_DIR = "revisions"  # under the state root
BLOB_MODE = 0o600
DIR_MODE = 0o700

# rollback: the revision before a failed update, applied again (failure_action rollback);
# gitops: a commit of a GitOps source (stackd/gitops), its commit recorded beside it
Cause = Literal["up", "down", "rollback", "gitops"]
# stack: a stack file; env: .env, --env-file or env_file (their values are in the stack);
# config / secret: a `file:` given to containers; environ: a shell variable the stack
# takes a secret, config or build arg from (path "env:NAME").
FileKind = Literal["stack", "env", "config", "secret", "environ"]
STORED_KINDS: frozenset[str] = frozenset({"config", "secret", "environ"})

register_schema("revisions", """
CREATE TABLE IF NOT EXISTS revision_counters (
    project TEXT PRIMARY KEY,
    last    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS revisions (
    project  TEXT NOT NULL,
    number   INTEGER NOT NULL,
    created  REAL NOT NULL,
    cause    TEXT NOT NULL,
    options  TEXT NOT NULL,
    source   TEXT NOT NULL,
    stack    TEXT,
    files    TEXT NOT NULL,
    images   TEXT NOT NULL,
    consumed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (project, number)
);
CREATE TABLE IF NOT EXISTS revision_rollouts (
    project  TEXT NOT NULL,
    number   INTEGER NOT NULL,
    rollouts TEXT NOT NULL,
    PRIMARY KEY (project, number)
)
""")


@dataclass(frozen=True)
class FileInput:
    path: str
    kind: FileKind
    sha256: str

    @property
    def stored(self) -> bool:
        """Is its content kept as a blob (what containers get), or only its digest?"""
        return self.kind in STORED_KINDS


@dataclass(frozen=True)
class NewRevision:
    """What a revision records before it is numbered."""

    cause: Cause
    options: str  # JSON of the apply options
    source: str  # JSON of where the stack came from, without the shell environment
    stack: str | None  # the resolved stack as JSON; None for a `down`
    files: tuple[FileInput, ...] = ()
    contents: Mapping[str, bytes] = field(default_factory=dict)  # sha256 → bytes


@dataclass(frozen=True)
class Revision:
    project: str
    number: int
    created: float
    cause: Cause
    options: str
    source: str
    stack: str | None
    files: tuple[FileInput, ...]
    images: Mapping[str, str]  # image ref → manifest digest, as first resolved
    consumed: bool


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    """Content-addressed files, root's only: <state>/revisions/<sha256>, mode 0600."""

    def __init__(self, state_root: Path) -> None:
        self.dir = state_root / BLOB_DIR

    def _ensure_dir(self) -> None:
        self.dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(self.dir, DIR_MODE)  # mkdir's mode is masked by the umask

    def put(self, data: bytes) -> str:
        """Store `data` (blocking I/O: call from a worker thread); its digest."""
        digest = sha256(data)
        self._ensure_dir()
        path = self.dir / digest
        if path.exists():
            return digest
        tmp = self.dir / f".{digest}.{os.getpid()}.tmp"
        # O_EXCL with the mode given at creation: the content is never readable by
        # anyone else, not even between open and a chmod.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, BLOB_MODE)
        try:
            os.fchmod(fd, BLOB_MODE)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
        return digest

    def get(self, digest: str) -> bytes:
        """A blob's bytes, checked against its digest (blocking I/O)."""
        try:
            data = (self.dir / _checked(digest)).read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"revision content {digest[:12]} is missing from {self.dir}",
                                hint="run `stackd up` to apply the stack files again") from None
        if sha256(data) != digest:
            raise NotFoundError(f"revision content {digest[:12]} in {self.dir} is corrupt",
                                hint="run `stackd up` to apply the stack files again")
        return data

    def collect(self, referenced: Iterable[str]) -> list[str]:
        """Remove every blob not in `referenced`, and the half-written ones a crash left
        (blocking I/O; the caller never runs it beside a `put`); the names removed."""
        keep = set(referenced)
        removed = []
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        for name in sorted(names):
            if name in keep:
                continue
            try:
                os.unlink(self.dir / name)
            except FileNotFoundError:
                continue
            removed.append(name)
        return removed


def _checked(digest: str) -> str:
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return digest


class RevisionStore:
    """The revision rows of the state database. Writers pass the connection of their
    own transaction (`insert`, `next_number`), so numbering a revision and pointing a
    stack at it are one atomic change."""

    def __init__(self, db: StateDB, *, keep: int = KEEP) -> None:
        if keep < 1:
            raise ValueError("keep at least one revision")
        self.db = db
        self.keep = keep

    @staticmethod
    def next_number(c: Connection, project: str, above: int = 0) -> int:
        """Take the project's next number (inside the caller's transaction); greater
        than `above` too (a generation numbered before revisions existed)."""
        row = c.execute("SELECT last FROM revision_counters WHERE project=?",
                        (project,)).fetchone()
        number = max(row["last"] if row else 0, above) + 1
        c.execute("INSERT INTO revision_counters (project, last) VALUES (?, ?)"
                  " ON CONFLICT(project) DO UPDATE SET last=excluded.last", (project, number))
        return number

    def insert(self, c: Connection, project: str, number: int, new: NewRevision) -> None:
        """Record revision `number` and drop the project's revisions beyond `keep`."""
        files = [{"path": f.path, "kind": f.kind, "sha256": f.sha256} for f in new.files]
        c.execute("INSERT INTO revisions (project, number, created, cause, options, source,"
                  " stack, files, images, consumed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '{}', 0)",
                  (project, number, time.time(), new.cause, new.options, new.source,
                   new.stack, json.dumps(files)))
        c.execute("DELETE FROM revisions WHERE project=? AND number NOT IN (SELECT number"
                  " FROM revisions WHERE project=? ORDER BY number DESC LIMIT ?)",
                  (project, project, self.keep))
        c.execute("DELETE FROM revision_rollouts WHERE project=? AND number NOT IN"
                  " (SELECT number FROM revisions WHERE project=?)", (project, project))

    def get(self, project: str, number: int) -> Revision | None:
        row = self.db.conn.execute("SELECT * FROM revisions WHERE project=? AND number=?",
                                   (project, number)).fetchone()
        return _revision(row) if row else None

    def list(self, project: str) -> list[Revision]:
        """The project's kept revisions, oldest first."""
        rows = self.db.conn.execute("SELECT * FROM revisions WHERE project=? ORDER BY number",
                                    (project,)).fetchall()
        return [_revision(r) for r in rows]

    def last_number(self, project: str) -> int:
        row = self.db.conn.execute("SELECT last FROM revision_counters WHERE project=?",
                                   (project,)).fetchone()
        return int(row["last"]) if row else 0

    def pin(self, project: str, number: int, ref: str, digest: str) -> str:
        """Record the image `ref` resolved to for this revision, unless one is recorded
        already: the first resolution holds. The digest that holds."""
        with self.db.transaction() as c:
            row = c.execute("SELECT images FROM revisions WHERE project=? AND number=?",
                            (project, number)).fetchone()
            if row is None:
                return digest
            images = json.loads(row["images"])
            if ref in images:
                return str(images[ref])
            images[ref] = digest
            c.execute("UPDATE revisions SET images=? WHERE project=? AND number=?",
                      (json.dumps(images, sort_keys=True), project, number))
        return digest

    def consume(self, project: str, number: int, c: Connection | None = None) -> None:
        """Its one-shot options were honoured (or its `down` finished): never again."""
        sql = "UPDATE revisions SET consumed=1 WHERE project=? AND number=?"
        if c is not None:
            c.execute(sql, (project, number))
            return
        with self.db.transaction() as tx:
            tx.execute(sql, (project, number))

    def rollouts(self, project: str) -> dict[int, dict[str, Any]]:
        """Per revision number, its rolling updates' state as last kept (JSON objects
        per service; the reconciler's `rolling.Rollout` reads them)."""
        rows = self.db.conn.execute("SELECT number, rollouts FROM revision_rollouts"
                                    " WHERE project=?", (project,)).fetchall()
        return {int(r["number"]): json.loads(r["rollouts"]) for r in rows}

    def keep_rollouts(self, project: str, number: int, rollouts: Mapping[str, Any]) -> None:
        """What the revision's rolling updates did so far: the next pass goes on from
        here, also in a daemon started after this one died."""
        with self.db.transaction() as c:
            c.execute("INSERT INTO revision_rollouts (project, number, rollouts)"
                      " VALUES (?, ?, ?) ON CONFLICT(project, number) DO UPDATE"
                      " SET rollouts=excluded.rollouts",
                      (project, number, json.dumps(rollouts, sort_keys=True)))

    def referenced_blobs(self) -> set[str]:
        """Digests of the stored contents any kept revision (of any project) refers to."""
        out: set[str] = set()
        for row in self.db.conn.execute("SELECT files FROM revisions"):
            out.update(f["sha256"] for f in json.loads(row["files"])
                       if f["kind"] in STORED_KINDS)
        return out


def _revision(row: object) -> Revision:
    r: dict[str, object] = dict(row)  # type: ignore[call-overload]
    files = tuple(FileInput(str(f["path"]), f["kind"], str(f["sha256"]))
                  for f in json.loads(str(r["files"])))
    return Revision(project=str(r["project"]), number=int(r["number"]),  # type: ignore[call-overload]
                    created=float(r["created"]),  # type: ignore[arg-type]
                    cause=r["cause"],  # type: ignore[arg-type]
                    options=str(r["options"]), source=str(r["source"]),
                    stack=None if r["stack"] is None else str(r["stack"]),
                    files=files, images=json.loads(str(r["images"])),
                    consumed=bool(r["consumed"]))
