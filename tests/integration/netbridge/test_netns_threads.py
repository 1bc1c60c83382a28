"""Namespaces are made and configured from worker threads without forking.

The daemon is multi-threaded; a child forked from it (as pyroute2's IPRoute(netns=…)
does to open a socket in a namespace) can hang forever on a lock another thread held
at the fork — it once froze an `up` of 50 services. stackd steps a worker thread into
the namespace instead, and must always step it back out.
"""

from __future__ import annotations

import os
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from stackd.errors import HostError
from stackd.netbridge import links, netns

pytestmark = pytest.mark.root


def _own_netns() -> int:
    return os.stat(f"/proc/self/task/{threading.get_native_id()}/ns/net").st_ino


@pytest.fixture
def forks():
    count = [0]

    def before() -> None:
        count[0] += 1

    os.register_at_fork(before=before)  # hooks cannot be removed: the list is per test
    start = count[0]
    yield lambda: count[0] - start


def test_many_threads_make_namespaces_at_once_and_come_back(tmp_path: Path, forks):
    paths = [tmp_path / f"ns{i}" for i in range(16)]

    def make(path: Path) -> tuple[int, int, str]:
        before = _own_netns()
        netns.create(path)
        links.lo_up(str(path))
        after = _own_netns()
        # `ip -n NAME` wants a name under /var/run/netns; nsenter takes a path.
        inside = subprocess.run(["nsenter", f"--net={path}", "ip", "-o", "link", "show", "lo"],
                                capture_output=True, text=True, check=True)
        return before, after, inside.stdout

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(make, paths))
        for before, after, lo in results:
            assert before == after, "a worker thread was left inside a container's namespace"
            assert "UP" in lo.split("<")[1].split(">")[0]
        assert len({os.stat(p).st_ino for p in paths}) == len(paths), "namespaces were shared"
        assert forks() == 0
    finally:
        for p in paths:
            netns.remove(p)
    assert not any(netns.is_netns(p) for p in paths)


def test_a_missing_namespace_is_a_host_error_and_the_thread_stays_home(tmp_path: Path):
    before = _own_netns()
    with pytest.raises(HostError, match="nothing-here"):
        links.lo_up(str(tmp_path / "nothing-here"))
    assert _own_netns() == before
