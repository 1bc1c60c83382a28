"""Where a daemon's socket, pid file and log live, given the roots (see roots.py)."""

from __future__ import annotations

from pathlib import Path

from stackd.roots import Roots


def socket_path(roots: Roots) -> Path:
    return roots.run / "stackd.sock"


def pid_path(roots: Roots) -> Path:
    return roots.run / "stackd.pid"


def log_path(roots: Roots) -> Path:
    # Under the state root, not the run dir: the log of a daemon that died is what one
    # wants to read after a reboot.
    return roots.state / "logs" / "daemon.log"
