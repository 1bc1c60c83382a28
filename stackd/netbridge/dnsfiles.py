"""Where the resolver process of a state root keeps its files (all under the run dir,
root-only), and the records file: written whole and renamed into place, so a reader
sees the old table or the new one, never half of one."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stackd.netbridge.dns import TableError


@dataclass(frozen=True, slots=True)
class DnsPaths:
    run: Path

    @property
    def socket(self) -> Path:
        return self.run / "dns.sock"

    @property
    def pidfile(self) -> Path:
        return self.run / "dns.pid"

    @property
    def lock(self) -> Path:
        return self.run / "dns.lock"

    @property
    def records(self) -> Path:
        return self.run / "dns.records.json"

    @property
    def log(self) -> Path:
        return self.run / "dns.log"


def write_table(path: Path, table: dict[str, Any]) -> None:
    """Atomically, mode 0600 (it lists every container's names and addresses)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:  # mkstemp makes it 0600
            json.dump(table, f, separators=(",", ":"))
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def read_table(path: Path) -> dict[str, Any] | None:
    """The table, None if there is no file; TableError if it is not JSON at all (what
    it holds is checked by `Records.from_table`)."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        table = json.loads(text)
    except ValueError as exc:
        raise TableError(f"{path}: not JSON ({exc})") from None
    if not isinstance(table, dict):
        raise TableError(f"{path}: not a records table")
    return table
