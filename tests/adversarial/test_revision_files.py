"""Hostile `file:`s of configs and secrets: `up` reads them into the revision it
records, so a FIFO or an endless device must be refused, not read for ever."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from e2e_helpers import CLI, DEMO_IMAGE


def stack(path: Path, kind: str) -> str:
    return (f"name: hostile\nservices:\n  app:\n    image: {DEMO_IMAGE}\n"
            f"    command: [\"sleep\", \"3600\"]\n    {kind}: [x]\n"
            f"{kind}:\n  x:\n    file: {path}\n")


@pytest.mark.parametrize("kind", ["configs", "secrets"])
@pytest.mark.parametrize("target", ["fifo", "/dev/zero", "big"])
def test_up_refuses_a_file_that_is_no_plain_small_file(cli: CLI, kind: str,
                                                        target: str) -> None:
    if target == "fifo":
        path = cli.cwd / "pipe"
        os.mkfifo(path)
    elif target == "big":
        path = cli.cwd / "big"
        with open(path, "wb") as f:
            f.truncate(2 << 20)  # sparse: nothing big on the disk
    else:
        path = Path(target)
    (cli.cwd / "compose.yaml").write_text(stack(path, kind))
    r = cli("up", "-d", check=False, timeout=60)
    assert r.returncode == 2, r.stderr
    what = "not a regular file" if target != "big" else "larger than 1 MiB"
    assert f"{kind[:-1]} 'x': {path} is {what}" in r.stderr
    assert "Traceback" not in r.stderr
    # Nothing recorded, nothing started, and the daemon still answers.
    assert cli("ps", "-a", "--format", "json").stdout.strip() == ""
    assert not (cli.roots.state / "revisions").exists() or not any(
        (cli.roots.state / "revisions").iterdir())
