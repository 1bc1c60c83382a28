"""The state database: one SQLite file in WAL mode under the state root.

Each package that keeps durable records declares its tables in its own module under
`stackd/state/` and registers them with `register_schema`; `StateDB.open` creates
whatever is missing. Writes happen inside `transaction()`, which is BEGIN IMMEDIATE so
two processes (a daemon and a CLI) never interleave half a change.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stackd.errors import disk_full
from stackd.filemodes import PRIVATE_FILE

_SCHEMAS: dict[str, str] = {}


def register_schema(name: str, ddl: str) -> None:
    """Declare tables (idempotent DDL: CREATE TABLE IF NOT EXISTS …) under a name."""
    _SCHEMAS[name] = ddl


class StateDB:
    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    @classmethod
    def open(cls, path: Path) -> StateDB:
        path.parent.mkdir(parents=True, exist_ok=True)
        # It holds the environments stacks were applied with, which may carry secrets.
        # SQLite makes the -wal and -shm files with the database file's mode; an
        # existing pair (an older stackd's) is tightened too. By path, never by opening
        # and closing a descriptor: closing any descriptor of the file drops every POSIX
        # lock this process holds on it, those of its open connections included — and a
        # connection elsewhere then takes itself for the last one and resets the WAL
        # under them (tests/unit/state/test_db_locks.py).
        try:
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                             PRIVATE_FILE))
        except FileExistsError:
            pass
        for suffix in ("", "-wal", "-shm"):
            sibling = path.with_name(path.name + suffix)
            with contextlib.suppress(FileNotFoundError):
                os.chmod(sibling, PRIVATE_FILE)
        # check_same_thread=False: trio.to_thread may run queries on worker threads;
        # callers serialise use of one StateDB themselves.
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:  # a daemon started on a full disk says why, in a line
            conn.close()
            full = disk_full(exc, str(path))
            if full is not None:
                raise full from exc
            raise
        db = cls(conn, path)
        db.ensure_schemas()
        return db

    def ensure_schemas(self) -> None:
        with self.transaction() as c:
            for ddl in _SCHEMAS.values():
                for stmt in ddl.split(";"):
                    if stmt.strip():
                        c.execute(stmt)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A full disk comes out as DiskFullError (a StackdError the callers already
        handle and retry), never as sqlite3's OperationalError; and the connection is
        left outside any transaction, so the next one works once there is room."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self._rollback()
                raise
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                # A COMMIT that failed (SQLITE_FULL) leaves the transaction open: every
                # later BEGIN would fail with "within a transaction" forever.
                self._rollback()
                raise
        except sqlite3.Error as exc:
            full = disk_full(exc, str(self.path))
            if full is not None:
                raise full from exc
            raise

    def _rollback(self) -> None:
        # SQLite may have rolled back by itself (it does on SQLITE_FULL); a ROLLBACK then
        # fails and would hide the error that matters.
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    def close(self) -> None:
        self.conn.close()
