"""A full disk, said once: the classification into DiskFullError, the state database's
recovery after SQLITE_FULL, log writes that drop instead of failing, the disk watch,
and the repeat filter that keeps logs bounded."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
from pathlib import Path

import pytest

from stackd.daemon.diskwatch import FULL_BELOW, DiskWatch
from stackd.errors import DiskFullError, StackdError, UnavailableError, disk_full
from stackd.repeats import Repeats, with_count
from stackd.runtime.logfile import LogWriter, read_records
from stackd.state.db import StateDB, register_schema

register_schema("test_faults", "CREATE TABLE IF NOT EXISTS test_faults_blob (b BLOB)")


@pytest.mark.parametrize("exc", [
    OSError(errno.ENOSPC, "No space left on device"),
    OSError(errno.EDQUOT, "Disk quota exceeded"),
    sqlite3.OperationalError("database or disk is full"),
])
def test_no_space_is_a_disk_full_error(exc: BaseException) -> None:
    typed = disk_full(exc, "/somewhere")
    assert isinstance(typed, DiskFullError)
    assert isinstance(typed, UnavailableError) and typed.exit_code == 1
    assert typed.message.startswith("no space left on the disk (/somewhere): ")
    assert "free space" in (typed.hint or "")


@pytest.mark.parametrize("exc", [
    OSError(errno.EACCES, "Permission denied"), sqlite3.OperationalError("database is locked"),
    ValueError("disk is full"), StackdError("no space left"),
])
def test_other_errors_are_not(exc: BaseException) -> None:
    assert disk_full(exc) is None


def test_the_database_recovers_after_sqlite_full(tmp_path: Path) -> None:
    db = StateDB.open(tmp_path / "state.db")
    pages = db.conn.execute("PRAGMA page_count").fetchone()[0]
    db.conn.execute(f"PRAGMA max_page_count = {pages + 2}")  # a disk with two pages left
    with pytest.raises(DiskFullError, match="no space left on the disk"), db.transaction() as c:
        for _ in range(50):
            c.execute("INSERT INTO test_faults_blob VALUES (?)", (b"x" * 4000,))
    assert not db.conn.in_transaction
    db.conn.execute("PRAGMA max_page_count = 1000000")  # room again
    with db.transaction() as c:
        c.execute("INSERT INTO test_faults_blob VALUES (?)", (b"ok",))
    assert db.conn.execute("SELECT count(*) FROM test_faults_blob").fetchone()[0] == 1
    db.close()


def test_log_writes_on_a_full_disk_are_dropped_then_said(tmp_path: Path) -> None:
    log = LogWriter(tmp_path / "log.json", 10 * 1024 * 1024, 3)
    log.feed("stdout", b"before\n")
    real = os.dup(log._fd)
    full = os.open("/dev/full", os.O_WRONLY)  # every write: ENOSPC
    os.dup2(full, log._fd)
    log.feed("stdout", b"lost 1\nlost 2\n")  # no exception: the container goes on
    log.feed("stderr", b"lost 3\n")
    assert log.lost == 3
    os.dup2(real, log._fd)  # room again
    log.feed("stdout", b"after\n")
    log.close()
    os.close(real)
    os.close(full)
    lines = [r.line for r in read_records(tmp_path / "log.json")]
    assert lines == ["before",
                     "[stackd: 3 line(s) of output lost: no space left on the disk]",
                     "after"]
    assert all(json.loads(raw) for raw in (tmp_path / "log.json").read_bytes().splitlines())


def test_the_disk_watch_reports_a_fault_once_and_its_end() -> None:
    said: list[tuple[str, dict[str, str]]] = []
    watch = DiskWatch([Path("/s"), Path("/r")],
                      lambda kind, message="", **attrs: said.append((kind, attrs)))
    room = 10 * FULL_BELOW
    watch.look({Path("/s"): (room, 100), Path("/r"): (room, 100)})
    assert watch.faults() == [] and said == []
    for _ in range(3):
        watch.look({Path("/s"): (FULL_BELOW - 1, 100), Path("/r"): (room, 100)})
    assert [(f.kind, f.path) for f in watch.faults()] == [("disk_full", "/s")]
    assert said == [("error", {"fault": "disk_full", "path": "/s"})]
    watch.look({Path("/s"): (room, 100), Path("/r"): (room, 0)})  # /r: no inode left
    assert [f.path for f in watch.faults()] == ["/r"]
    assert said[1:] == [("heal", {"fault": "disk_full", "path": "/s"}),
                        ("error", {"fault": "disk_full", "path": "/r"})]


def test_a_repeated_complaint_is_said_once_a_window_with_a_count() -> None:
    now = [0.0]
    r = Repeats(window=60.0, clock=lambda: now[0])
    assert r.admit("full") == 0
    for _ in range(1000):
        now[0] += 0.01
        assert r.admit("full") is None
    assert r.admit("other") == 0  # another complaint is said at once
    now[0] = 61.0
    assert r.admit("full") == 1000
    assert with_count("disk full", 1000) == \
        "disk full (and 1000 more time(s) since it was last said)"
    assert with_count("disk full", 0) == "disk full"
