"""The keeper is host memory paid per state root for as long as the monitor lives
(issue #20): it imports a few standard modules only, and its hand-written rules give
what the runtime's own would."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pytest

from stackd.runtime.keeper import _utc_now_iso, parse_args

HEAVY = ("ctypes", "argparse", "datetime", "pathlib", "typing", "pydantic", "trio")


def test_the_keeper_imports_nothing_heavy() -> None:
    # Before: stackd.runtime.syscalls (ctypes), argparse, datetime, pathlib and typing
    # took its PSS from ~4.5 to ~8 MiB.
    code = ("import runpy, sys; sys.argv = ['keeper']\n"
            "try:\n    runpy.run_module('stackd.runtime.keeper', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_its_time_and_arguments_are_the_runtimes() -> None:
    stamp = datetime.fromisoformat(_utc_now_iso())
    assert stamp.tzinfo is not None
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 5
    args = parse_args(["--run", "/r", "--root-id", "ab", "--monitor-pid", "7",
                       "--socket-fd", "3"])
    assert args == {"--run": "/r", "--root-id": "ab", "--monitor-pid": "7",
                    "--socket-fd": "3"}
    with pytest.raises(SystemExit, match="usage: stackd-keeper"):
        parse_args(["--run", "/r"])
