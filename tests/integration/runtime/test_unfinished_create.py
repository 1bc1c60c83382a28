"""A monitor killed in the middle of a create leaves what the create had made so far:
the container's directories and spec, its cgroups, and its first process still in
setup. Nothing lists such a container (it has no state record) and a create of the
same id is refused, so the next monitor must undo it, or it stays on the host for good
and its service can never be made again (the CI failure of test_root_ids: a daemon's
heal was creating the container when reclaim killed its monitor).
"""

from __future__ import annotations

import subprocess

import trio

from stackd.runtime import containerdirs
from stackd.runtime.cgroups import manager_for
from stackd.runtime.layout import ContainerPaths
from stackd.runtime.specview import dump_spec
from stackd.runtime.statefile import write_json


async def test_the_next_monitor_undoes_a_create_its_killed_predecessor_left_unfinished(
        rt, roots, make_spec):
    # What create had done when its monitor died: directories, spec, cgroups, and the
    # first process (here a stand-in) in the cgroup, but no state record yet.
    spec = make_spec("half", "sleep", "1000")
    paths = ContainerPaths(roots, spec.id)
    containerdirs.make(spec, paths)
    write_json(paths.spec, dump_spec(spec))
    cgroup = manager_for(roots.id, spec.id)
    cgroup.create()
    stray = subprocess.Popen(["sleep", "1000"])
    try:
        cgroup.join(stray.pid)

        assert await rt.list() == []  # a new monitor, which has looked at what is there

        assert await trio.to_thread.run_sync(stray.wait, 5) == -9
        assert [p for p in cgroup.paths() if p.exists()] == []
        assert not paths.run_dir.exists() and not paths.state_dir.exists()
        # …and the id is free again: the service can be made.
        await rt.create(spec)
        await rt.start(spec.id)
        assert [(s.id, s.status) for s in await rt.list()] == [("half", "running")]
    finally:
        stray.kill()
        stray.wait()


def test_reclaim_removes_a_cut_short_create_with_its_process(roots, make_spec):
    """The tests' safety net (leaks.reclaim) with no monitor to ask: the process in the
    cgroup is killed and the cgroups go, EBUSY and all."""
    from stackd.leaks.lister import find_leaks
    from stackd.leaks.reclaim import reclaim

    spec = make_spec("half", "sleep", "1000")
    cgroup = manager_for(roots.id, spec.id)
    cgroup.create()
    stray = subprocess.Popen(["sleep", "1000"])
    try:
        cgroup.join(stray.pid)
        assert {leak.kind for leak in find_leaks(roots.id, [roots])} == {"cgroup", "process"}
        reclaim(roots)
        assert stray.wait(5) == -9
        assert find_leaks(roots.id, [roots]) == []
    finally:
        stray.kill()
        stray.wait()
        reclaim(roots)
