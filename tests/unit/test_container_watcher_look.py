"""The container watcher's look (`adapters.disrupted`): one listing answers for every
container, and what it reports missing is what is missing — on directories of the
test's own standing in for a cgroup hierarchy and the netns directory."""

from __future__ import annotations

from pathlib import Path

from stackd import hostnames
from stackd.daemon.adapters import Looked, disrupted
from stackd.roots import Roots


def test_the_look_reports_each_missing_cgroup_netns_and_veth_once(tmp_path: Path) -> None:
    roots = Roots(tmp_path / "state", tmp_path / "run")
    hierarchy = tmp_path / "cgroup"
    parent = hierarchy / hostnames.cgroup_relpath(roots.id, "")
    for cid in ("whole", "no-netns", "no-veth", "no-netns-needed"):
        (parent / cid).mkdir(parents=True)
    (parent / "cgroup.procs").write_text("")  # a control file is not a container's cgroup
    ns_dir = tmp_path / "netns"
    ns_dir.mkdir()
    (ns_dir / "no-netns").write_text("")  # the file a netns was bind-mounted on, unmounted

    def looked(cid: str, *, netns: bool = False, veths: tuple[str, ...] = ()) -> Looked:
        return Looked(cid, "p", netns, list(veths), 1.0)

    found = disrupted(roots, [str(hierarchy)], str(ns_dir), [
        looked("whole", veths=("lo",)),
        looked("gone-cgroup", netns=True, veths=("stkgone0",)),
        looked("cgroup.procs"),
        looked("no-netns", netns=True),
        looked("no-veth", veths=("lo", "stkgone1")),
        looked("no-netns-needed"),
    ])
    assert [(c.container_id, why) for c, why in found] == [
        ("gone-cgroup", f"cgroup {parent}/gone-cgroup was gone"),
        ("cgroup.procs", f"cgroup {parent}/cgroup.procs was gone"),
        ("no-netns", f"network namespace {ns_dir}/no-netns was gone"),
        ("no-veth", "veth stkgone1 was gone"),
    ]
    assert disrupted(roots, [str(hierarchy)], str(ns_dir), []) == []
