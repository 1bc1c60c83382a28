"""The roots a command takes from STACKD_ROOT / STACKD_RUN."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stackd.errors import UsageError
from stackd.roots import DEFAULT_RUN_ROOT, MAX_RUN_ROOT, Roots


def test_a_run_root_too_long_for_its_sockets_is_refused_by_name(tmp_path: Path) -> None:
    """Past ~94 bytes the monitor's socket no longer fits a unix socket's address:
    every command ended in "lost the stackd daemon on …: AF_UNIX path too long", and
    nothing said which setting to change."""
    long = "/" + "r" * (MAX_RUN_ROOT + 1)
    with pytest.raises(UsageError, match=rf"STACKD_RUN is {MAX_RUN_ROOT + 2} bytes long: "
                                         rf"the sockets in it need it at most {MAX_RUN_ROOT}"):
        Roots.from_env({"STACKD_RUN": long})
    fits = "/" + "r" * (MAX_RUN_ROOT - 1)
    assert Roots.from_env({"STACKD_RUN": fits}).run == Path(fits)
    assert Roots.from_env({}).run == Path(DEFAULT_RUN_ROOT)
    assert len(f"{fits}/monitor.sock".encode()) <= 107
    done = subprocess.run([sys.executable, "-m", "stackd", "container", "ls"],
                          env={**os.environ, "STACKD_RUN": str(tmp_path / ("r" * 100)),
                               "STACKD_ROOT": str(tmp_path / "state")},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "set STACKD_RUN to a shorter directory" in done.stderr
    assert os.listdir(tmp_path) == []  # nothing made
