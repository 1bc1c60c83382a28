"""Opening the state database again never breaks the connections already open.

SQLite keeps its WAL consistent with POSIX advisory locks, and closing *any*
descriptor of a file drops every such lock the process holds on it. StateDB.open
once opened and closed the database file to set its mode: a daemon opening a second
connection (netbridge has its own) dropped the first one's locks, and the next CLI
command to connect and leave took itself for the last connection and reset the WAL —
the daemon went on writing to the WAL file that process had removed, and every other
process read old rows (`network inspect` showed a recreated network's old subnet).
"""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

from stackd.state.db import StateDB, register_schema

register_schema("lock_probe", "CREATE TABLE IF NOT EXISTS lock_probe (n INTEGER)")


def _other_process_connects_and_leaves(path: Path) -> None:
    subprocess.run([sys.executable, "-c",
                    "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
                    "c.execute('PRAGMA journal_mode=WAL'); c.close()", str(path)], check=True)


def test_a_second_open_keeps_the_first_connections_view(tmp_path: Path) -> None:
    path = tmp_path / "stackd.db"
    writer = StateDB.open(path)
    with writer.transaction() as c:
        c.execute("INSERT INTO lock_probe VALUES (1)")
    reader = StateDB.open(path)  # as netbridge opens its own connection
    _other_process_connects_and_leaves(path)
    with writer.transaction() as c:
        c.execute("INSERT INTO lock_probe VALUES (2)")
    seen = subprocess.run([sys.executable, "-c",
                           "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
                           "print([r[0] for r in c.execute('SELECT n FROM lock_probe "
                           "ORDER BY n')])", str(path)],
                          check=True, capture_output=True, text=True).stdout.strip()
    assert seen == "[1, 2]"  # what another process (a CLI) reads
    writer.close()
    reader.close()


def test_the_database_and_its_wal_are_root_only(tmp_path: Path) -> None:
    path = tmp_path / "stackd.db"
    path.write_bytes(b"")
    path.chmod(0o644)  # an older stackd's
    db = StateDB.open(path)
    with db.transaction() as c:
        c.execute("INSERT INTO lock_probe VALUES (1)")
    for p in (path, path.with_name("stackd.db-wal"), path.with_name("stackd.db-shm")):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    db.close()
