"""A container that nests directories past Python's recursion limit (`mkdir a; cd a`,
1,100 times) — any image can.

Before: removing it killed the runtime monitor (its idle sweep of the deleted
container's directories raised RecursionError, which `shutil.rmtree`'s ignore_errors
does not catch), and every monitor started after died the same way on the same
leftover, which stayed on the host; `commit` and `export` of it ended in a
RecursionError traceback, as did `cp SVC:/a DEST`. Removing the committed image went
through the same recursion."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import time

import pytest
from e2e_helpers import CLI

pytestmark = pytest.mark.root

DEPTH = 1100
DEEP = "/a" * DEPTH


def _compose(image: str) -> str:
    nest = (f"i=0; while [ $$i -lt {DEPTH} ]; do mkdir a && cd a || exit 1; "
            "i=$$((i+1)); done; echo deep > leaf && touch /nested; exec sleep 1000")
    return (f"name: deeptree\nservices:\n"
            f"  deep:\n    image: {image}\n    pull_policy: never\n"
            f"    command: [sh, -c, '{nest}']\n    stop_signal: SIGKILL\n"
            f"  steady:\n    image: {image}\n    pull_policy: never\n"
            f"    command: [sleep, '1000']\n    stop_signal: SIGKILL\n")


def _wait_nested(cli: CLI) -> None:
    deadline = time.monotonic() + 60
    while cli("exec", "-T", "deep", "test", "-e", "/nested", check=False).returncode != 0:
        assert time.monotonic() < deadline, "the container did not nest its tree"
        time.sleep(0.2)


def test_a_deep_tree_is_committed_exported_copied_and_removed(
        cli: CLI, demo_image: str) -> None:
    (cli.cwd / "compose.yaml").write_text(_compose(demo_image))
    cli("up", "-d")
    _wait_nested(cli)

    cli("commit", "deep", "evil/deep:1")
    tar_path = cli.cwd / "export.tar"
    cli("export", "deep", "-o", str(tar_path))
    with tarfile.open(tar_path) as tar:
        leaf = tar.extractfile(DEEP.lstrip("/") + "/leaf")
        assert leaf is not None and leaf.read() == b"deep\n"
    tar_path.unlink()
    out = subprocess.run([sys.executable, "-m", "stackd", "cp", "deep:/a", "-"],
                         cwd=cli.cwd, env=cli.env(), capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tar:
        assert len(tar.getnames()) == DEPTH + 1

    monitor = int((cli.roots.run / "monitor.pid").read_text())
    cli("rm", "-s", "-f", "deep")
    cli("image", "rm", "evil/deep:1")
    trash = [cli.roots.state / "containers", cli.roots.run / "containers"]
    deadline = time.monotonic() + 30
    while any(e.name.startswith(".deleted-") for d in trash for e in d.iterdir()):
        assert time.monotonic() < deadline, "the deleted container's files stayed"
        time.sleep(0.2)
    # The monitor that swept them is the one that ran, and still serves.
    assert os.path.exists(f"/proc/{monitor}")
    assert int((cli.roots.run / "monitor.pid").read_text()) == monitor
    assert cli("exec", "-T", "steady", "echo", "alive").stdout == "alive\n"
    snapshots = cli.roots.state / "images" / "snapshots"
    assert not [e for e in snapshots.iterdir() if e.name.startswith(".tmp-")]
