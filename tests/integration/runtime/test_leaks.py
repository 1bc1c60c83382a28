"""tools/leaks finds what stackd owns on the host, by root id."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from stackd.hostnames import cgroup_relpath
from stackd.runtime.cgroups import host_mounts

pytestmark = pytest.mark.root

TOOL = Path(__file__).resolve().parents[3] / "tools" / "leaks"


def leaks(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TOOL), *args], capture_output=True, text=True, timeout=30)


def test_leaks_lists_a_leftover_cgroup_and_mount_of_one_root(roots, no_leaks):
    assert leaks("--root-id", roots.id).returncode == 0
    leftover = host_mounts().v1["pids"] / cgroup_relpath(roots.id, "forgotten")
    mountpoint = roots.state / "forgotten-mount"
    mountpoint.mkdir()
    leftover.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(mountpoint)], check=True)
    try:
        result = leaks("--root-id", roots.id, "--state", str(roots.state))
        assert result.returncode == 1
        lines = result.stdout.splitlines()
        assert f"cgroup   {roots.id} {leftover}" in lines
        # the mount's owner is known from its path: the state root's owner id
        assert f"mount    {roots.id} {mountpoint} (root {roots.owner_id[:12]})" in lines
        assert all(f" {roots.id} " in line for line in lines)  # nothing of other roots
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True)
        leftover.rmdir()
        leftover.parent.rmdir()
    assert leaks("--root-id", roots.id, "--state", str(roots.state)).returncode == 0
