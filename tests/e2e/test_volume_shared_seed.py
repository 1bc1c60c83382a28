"""A named volume several services mount, seeded from their image on first use: the
copy is made once, whole, however many containers are created at the same time."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_helpers import CLI, DEMO_IMAGE, torn_down

from stackd.roots import Roots

pytestmark = [pytest.mark.root, pytest.mark.slow]

SERVICES = 6

STACK = """\
name: seedrace
services:
""" + "".join(f"""\
  s{i}:
    image: {DEMO_IMAGE}
    pull_policy: never
    network_mode: none
    command: [sleep, "1000"]
    stop_signal: SIGKILL
    volumes: [shared:/bin]
""" for i in range(SERVICES)) + """\
volumes:
  shared: {}
"""


def test_services_sharing_a_new_volume_all_start_with_it_seeded_once(
        no_leaks: Roots, demo_image: str, tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(STACK)
    with torn_down(CLI(no_leaks, tmp_path)) as cli:
        r = cli("up", "-d", check=False)
        assert r.returncode == 0, r.stderr
        for i in range(SERVICES):
            out = cli("exec", "-T", f"s{i}", "/bin/cat", "/etc/passwd").stdout
            assert out.startswith("root:"), out
