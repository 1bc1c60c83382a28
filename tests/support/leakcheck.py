"""The `no_leaks` fixture: a test fails if it leaves any host resource of its own
state root behind (the same search as tools/leaks, limited to the test's root id,
because other tests run on this host at the same time).

On teardown it first asks the root's runtime monitor to shut down — the monitor
refuses while it still holds containers, exactly the case we want to report — then
looks. Whatever it finds is reclaimed before the test is failed, so one bad test
does not poison the host for the next.
"""

from __future__ import annotations

import time

import pytest

from stackd.leaks.lister import Leak, find_leaks
from stackd.leaks.reclaim import ask_monitor, reclaim
from stackd.roots import Roots

SETTLE_SECONDS = 5.0


def settle(roots: Roots) -> list[Leak]:
    if (roots.run / "monitor.sock").exists():
        ask_monitor(roots, {"op": "shutdown"})
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        leaks = find_leaks(roots.id, [roots])
        # A monitor that agreed to stop needs a moment to clean up (its cgroup parents,
        # removed directories) and exit; judge what is left once it is gone, with a
        # fresh look (the one that saw it gone may have seen its cgroups before).
        if not any(leak.kind == "monitor" for leak in leaks):
            return find_leaks(roots.id, [roots])
        if time.monotonic() > deadline:
            return leaks
        time.sleep(0.02)


@pytest.fixture
def no_leaks(roots: Roots):  # type: ignore[no-untyped-def]
    before = find_leaks(roots.id, [roots])
    assert before == [], f"root {roots.id} is not clean before the test: {before}"
    yield roots
    leaks = settle(roots)
    if leaks:
        reclaim(roots)
        pytest.fail("leaked host resources:\n" + "\n".join(map(str, leaks)), pytrace=False)
