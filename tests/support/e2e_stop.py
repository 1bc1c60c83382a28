"""Stopping a root's daemon by the PID in its pid file (tests/e2e's helper, reachable
from support modules)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from e2e_helpers import stop_daemon

__all__ = ["stop_daemon"]
