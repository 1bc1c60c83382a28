"""`stackd commit` and `stackd export` as Compose's and Docker's: a container's changes
(a file added, one deleted) become an image with the container's config and the
--change'd bits, or a tar of its tree; the runtime's own mount points (a volume's,
/etc/hosts') are in neither."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from e2e_helpers import DEMO_IMAGE, stack_dir

from stackd.roots import Roots

pytestmark = pytest.mark.root

COMPOSE = f"""\
name: snap
services:
  web:
    image: {DEMO_IMAGE}
    command: [sleep, '1000']
    stop_signal: SIGKILL
    environment: {{FOO: bar}}
    volumes: [data:/data]
volumes:
  data: {{}}
"""


def test_commit_and_export_a_containers_changes(no_leaks: Roots, demo_image: str,
                                                tmp_path: Path) -> None:
    with stack_dir(no_leaks, tmp_path, "snap", COMPOSE) as cli:
        cli("up", "-d")
        cli("exec", "-T", "web", "sh", "-c",
            "echo hi > /added.txt && rm /bin/vi && echo in-volume > /data/x")

        for bad in ("..", "nosuchdir/web.tar"):  # were tracebacks, a temporary left
            r = cli("export", "-o", bad, "web", check=False)
            assert r.returncode == 2 and f"export -o {bad!r}" in r.stderr, r.stderr
        assert not [p for p in cli.cwd.iterdir() if p.name.endswith(".tmp")]
        cli("export", "-o", "web.tar", "web")
        with tarfile.open(cli.cwd / "web.tar") as tar:
            names = set(tar.getnames())
            added = tar.extractfile("added.txt")
            assert added is not None and added.read() == b"hi\n"
        assert "bin/sh" in names and "bin/vi" not in names  # the deletion holds
        assert not {n for n in names if n.startswith(("data", "proc/", "sys/"))}, names

        image_id = cli("commit", "-m", "with tools", "-c", "ENV MODE=debug",
                       "-c", 'CMD ["sh", "-c", "cat /added.txt; test -e /bin/vi || echo gone"]',
                       "web", "snap/web:debug").stdout.strip()
        assert image_id.startswith("sha256:")
        (info,) = json.loads(cli("image", "inspect", "snap/web:debug").stdout)
        env = dict(e.split("=", 1) for e in info["config"]["env"])
        assert env["FOO"] == "bar" and env["MODE"] == "debug"  # the container's, then -c
        out = cli("run", "--rm", "snap/web:debug").stdout.split()
        assert out == ["hi", "gone"], out
        r = cli("run", "--rm", "snap/web:debug", "ls", "/data", check=False)
        assert r.returncode != 0  # a volume's mount point is not part of the image
        r = cli("commit", "-c", "RUN true", "web", check=False)
        assert r.returncode == 2 and "RUN does not change an image's config" in r.stderr
        r = cli("commit", "--no-pause", "web", check=False)
        assert r.returncode == 2 and "stackd pauses it while its layer is read" in r.stderr
        # A container the user paused stays paused; one that ran runs on.
        cli("pause", "web")
        cli("export", "-o", "paused.tar", "web")
        assert "(Paused)" in cli("ps", "web").stdout
        cli("unpause", "web")
        cli("commit", "web")
        assert "(Paused)" not in cli("ps", "web").stdout
        assert cli("exec", "-T", "web", "cat", "/added.txt").stdout == "hi\n"
