"""The adversarial tier: hostile images, stack files and API requests, and faults
(a full disk, a killed monitor, corrupt records). Each test asserts what is left on
the host afterwards, not only what the command printed.

Fixtures: `demo_image` (busybox imported into the test's own root) and `cli` (the
`stackd` command on that root, in a scratch project directory, torn down — `down -v`,
daemon stopped by PID, leak check — whatever the test did).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from e2e_helpers import CLI, DEMO_IMAGE, torn_down
from support.busybox import busybox_available, make_busybox_tar

from stackd.roots import Roots


@pytest.fixture
def demo_image(roots: Roots, tmp_path: Path) -> str:
    if not busybox_available():
        if os.environ.get("CI") == "true":
            pytest.fail("busybox-static is not installed: scripts/setup must install it")
        pytest.skip("busybox-static is not installed")
    from stackd.images import ImageStore

    tar = make_busybox_tar(tmp_path / "busybox.tar", tmp_path)
    ImageStore(roots).import_rootfs(tar, ref=DEMO_IMAGE)
    return DEMO_IMAGE


@pytest.fixture
def cli(no_leaks: Roots, demo_image: str, tmp_path: Path) -> Iterator[CLI]:
    work = tmp_path / "project"
    work.mkdir()
    with torn_down(CLI(no_leaks, work)) as c:
        yield c
