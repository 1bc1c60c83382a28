"""Two live state roots whose 16-bit root ids collide: each one's leak check and
reclaim must leave the other's containers, monitor, devices and nft chains alone.

Without ownership records, `reclaim` of one killed the other's monitor and container
processes (both matched `--root-id`/`stackd/<id>`), and `no_leaks` reported the other's
devices and chains as its own leaks.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from e2e_helpers import CLI, DEMO_IMAGE, torn_down
from support.busybox import busybox_available, make_busybox_tar
from support.leakcheck import settle

from stackd.leaks.lister import find_leaks, monitors
from stackd.leaks.reclaim import reclaim
from stackd.roots import Roots

pytestmark = [pytest.mark.root, pytest.mark.slow]

STACK = f"""\
name: {{name}}
services:
  app:
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [sleep, "1000"]
    stop_signal: SIGKILL
"""


def colliding_roots(base: Path) -> tuple[Roots, Roots]:
    """Two state roots under `base` with the same `Roots.id` (16 bits: a few hundred
    tries by the birthday bound)."""
    seen: dict[str, Roots] = {}
    for i in range(200_000):
        r = Roots(base / f"r{i}" / "state", base / f"r{i}" / "run")
        if r.id in seen:
            return seen[r.id], r
        seen[r.id] = r
    raise AssertionError("no collision found")  # pragma: no cover


def test_colliding_roots_are_found(tmp_path: Path) -> None:
    a, b = colliding_roots(tmp_path)
    assert a.id == b.id and a.owner_id != b.owner_id and a.chain_id != b.chain_id


def _running_pids(roots: Roots) -> list[int]:
    """PIDs of the root's containers, from its monitor's records via the runtime."""
    import trio

    from stackd.runtime import Runtime

    async def pids() -> list[int]:
        return sorted(st.pid for st in await Runtime(roots).list()
                      if st.status == "running" and st.pid)

    return trio.run(pids)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def two_stacks(tmp_path: Path) -> Iterator[tuple[CLI, CLI]]:
    if not busybox_available():
        pytest.skip("busybox-static is not installed")
    from stackd.images import ImageStore

    a, b = colliding_roots(tmp_path / "roots")
    tar = make_busybox_tar(tmp_path / "busybox.tar", tmp_path)
    clis = []
    for roots, name in ((a, "alpha"), (b, "beta")):
        roots.ensure()
        ImageStore(roots).import_rootfs(tar, ref=DEMO_IMAGE)
        work = tmp_path / name
        work.mkdir()
        (work / "compose.yaml").write_text(STACK.format(name=name))
        clis.append(CLI(roots, work))
    with ExitStack() as stack:
        for c in clis:
            stack.enter_context(torn_down(c))
        yield clis[0], clis[1]
    # Judged once both monitors are gone: the `stackd/<id>` parents are shared, and only
    # the last monitor of the id to exit removes them (a's was killed by reclaim).
    for c in clis:
        settle(c.roots)
    left = {c.roots.owner_id[:12]: find_leaks(c.roots.id, [c.roots]) for c in clis}
    for c in clis:
        if left[c.roots.owner_id[:12]]:
            reclaim(c.roots)
    assert left == {c.roots.owner_id[:12]: [] for c in clis}  # neither root left anything


def test_reclaiming_one_root_leaves_the_other_with_the_same_id_alone(
        two_stacks: tuple[CLI, CLI]) -> None:
    a, b = two_stacks
    a("up", "-d")
    b("up", "-d")
    a_pids, b_pids = _running_pids(a.roots), _running_pids(b.roots)
    assert len(a_pids) == 1 and len(b_pids) == 1
    b_monitor = [leak for leak, r in monitors(b.roots.id)
                 if r == b.roots and leak.kind == "monitor"]
    assert len(b_monitor) == 1

    # Each root's view names only its own devices and chains, by the owner recorded
    # on them (the names alone carry the same 4-hex id).
    for mine, other in ((a, b), (b, a)):
        seen = find_leaks(mine.roots.id, [mine.roots])
        kinds = {leak.kind for leak in seen}
        assert {"device", "nft", "cgroup", "process", "monitor"} <= kinds
        assert all(leak.may_belong_to(mine.roots) for leak in seen)
        assert not any(other.roots.owner_id.startswith(leak.owner)
                       for leak in seen if leak.owner)
        assert {leak.owner for leak in seen if leak.kind == "device"} == {
            mine.roots.owner_id}

    b_devices = {leak.what for leak in find_leaks(b.roots.id, [b.roots])
                 if leak.kind in ("device", "nft")}
    reclaim(a.roots)

    assert not any(_alive(p) for p in a_pids)  # a's container was reclaimed…
    time.sleep(0.5)  # …and stays so: a's daemon went first, so nothing heals it back
    assert [leak for leak in find_leaks(a.roots.id, [a.roots])  # (its bridge and nft
            if leak.kind not in ("device", "nft")  # chains are `down`'s to remove)
            and leak.owner and a.roots.owner_id.startswith(leak.owner)] == []
    assert all(_alive(p) for p in b_pids)  # …b's still runs, under its monitor
    assert all(_alive(int(m.what.split()[0])) for m in b_monitor)
    assert _running_pids(b.roots) == b_pids
    assert {leak.what for leak in find_leaks(b.roots.id, [b.roots])
            if leak.kind in ("device", "nft")} == b_devices
    assert "app" in b("ps").stdout
