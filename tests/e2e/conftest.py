"""The `stackd` command end to end on the stacks in examples/, with a real daemon.

Every test runs on its own roots; the daemon the CLI starts on demand is stopped by
its PID at the end, after `down -v`, and then `no_leaks` checks nothing is left.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import CLI, DEMO_IMAGE, EXAMPLES, torn_down
from support.busybox import busybox_available, make_busybox_tar
from support.freeaddrs import free_port
from support.hostpackages import require

from stackd.roots import Roots


@pytest.fixture
def demo_image(roots: Roots, tmp_path: Path) -> str:
    require(busybox_available(), "busybox-static")
    from stackd.images import ImageStore

    tar = make_busybox_tar(tmp_path / "busybox.tar", tmp_path)
    ImageStore(roots).import_rootfs(tar, ref=DEMO_IMAGE)
    return DEMO_IMAGE


@pytest.fixture
def webapp(no_leaks: Roots, demo_image: str, tmp_path: Path) -> Iterator[CLI]:
    """A copy of examples/webapp and a CLI pointed at it, publishing web on a free port
    (`cli.environ["WEBAPP_PORT"]`, not the demo's 8080); torn down completely after."""
    work = tmp_path / "webapp"
    shutil.copytree(EXAMPLES / "webapp", work)
    # busybox httpd as PID 1 ignores SIGTERM, so every stop would wait out the 10 s
    # grace period; the tests are about stackd, not about that wait.
    (work / "compose.override.yaml").write_text("services:\n" + "".join(
        f"  {s}:\n    stop_signal: SIGKILL\n" for s in ("db", "migrate", "api", "web")))
    with torn_down(CLI(no_leaks, work, {"WEBAPP_PORT": str(free_port())})) as cli:
        yield cli
