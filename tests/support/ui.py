"""Helpers of the web console's browser tests (tests/browser): the running console,
and screenshots saved under bench/out/ui/ (ignored by git) for people to look at."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SHOTS = Path(__file__).resolve().parents[2] / "bench" / "out" / "ui"


@dataclass
class Console:
    """A running `stackd ui`: the URL it printed (token included) and its process."""

    url: str
    base: str
    proc: subprocess.Popen[str]


def shot(driver: Any, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
