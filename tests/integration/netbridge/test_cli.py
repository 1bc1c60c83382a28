"""`stackd network …` on a real store and host, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from support.networld import World

pytestmark = pytest.mark.root


def stackd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stackd", *args], capture_output=True,
                          text=True, timeout=60)


async def test_ls_inspect_rm_prune(world: World) -> None:
    used = await world.network("used", internal=True)
    idle = await world.network("idle")
    box = await world.box("c1", ["used"])

    r = stackd("network", "ls")
    assert r.returncode == 0, r.stderr
    header, *lines = r.stdout.splitlines()
    assert header.split() == ["NAME", "PROJECT", "BRIDGE", "SUBNET", "GATEWAY", "INTERNAL"]
    assert sorted(line.split()[0] for line in lines) == ["t_idle", "t_used"]
    assert f"t_used   t         {used.bridge}" in r.stdout

    r = stackd("network", "inspect", "t_used")
    [info] = json.loads(r.stdout)
    assert (info["subnet"], info["internal"]) == (used.subnet, True)
    assert [(c["id"], c["ip"]) for c in info["containers"]] == [(box.id, box.ip)]

    r = stackd("network", "rm", "t_used")
    assert r.returncode == 1 and f"network t_used is in use by {box.id}" in r.stderr
    r = stackd("network", "inspect", "t_nope")
    assert r.returncode == 1 and "network t_nope does not exist" in r.stderr
    assert "Traceback" not in r.stderr

    r = stackd("network", "prune")
    assert (r.returncode, r.stdout) == (0, "Deleted networks:\nt_idle\n")
    assert subprocess.run(["ip", "link", "show", idle.bridge], capture_output=True).returncode
    assert stackd("network", "ls", "-q").stdout == "t_used\n"
