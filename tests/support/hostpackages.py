"""System packages the tests run (scripts/setup installs them all).

On a developer's machine a missing one skips the tests that need it. Under CI
(`CI=true`, as every CI service sets it) it fails them instead: there a missing
package means a missing install step, and a green run of skipped tiers would hide it.
"""

from __future__ import annotations

import os
import shutil

import pytest


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require(present: bool, package: str) -> None:
    """Go on if `present`; else skip the calling test or fixture, or fail it under CI."""
    if present:
        return
    message = f"{package} is not installed (apt-get install {package}, or scripts/setup)"
    if under_ci():
        pytest.fail(f"{message}; under CI every system package the tests use must be installed",
                    pytrace=False)
    pytest.skip(message)


def require_command(command: str, package: str) -> None:
    require(shutil.which(command) is not None, package)
