"""What a process inside sees: its own hostname, PID 1, its own /proc, its own root."""

from __future__ import annotations

import pytest
import trio
from runtime_helpers import run_to_end

from stackd.runtime.containerspec import Mount

pytestmark = pytest.mark.root


async def test_hostname_and_pid_1(rt, make_spec):
    exit_status, out, _ = await run_to_end(
        rt, make_spec("iso-host", "sh", "-c", "hostname; echo $$; readlink /proc/1/exe",
                      hostname="inside"))
    assert exit_status.code == 0
    hostname, pid, exe = out.splitlines()
    assert hostname == "inside"
    assert pid == "1"
    assert exe == "/bin/busybox"  # the container's own binary, seen from inside


async def test_proc_shows_only_the_container(rt, make_spec):
    _, out, _ = await run_to_end(rt, make_spec(
        "iso-proc", "sh", "-c", "sleep 5 & ls /proc | grep -E '^[0-9]+$' | sort -n; kill %1"))
    pids = [int(p) for p in out.split()]
    # sh (1), sleep, ls, grep, sort: nothing from the host, whose pids are far higher.
    assert pids[0] == 1
    assert len(pids) <= 6
    assert max(pids) < 20


async def test_file_written_inside_is_in_the_upper_dir_only_and_gone_after_delete(
        rt, make_spec, busybox_layer, roots):
    spec = make_spec("iso-files", "sh", "-c", "echo hi > /written; cat /written")
    exit_status, out, _ = await run_to_end(rt, spec, keep=True)
    assert (exit_status.code, out) == (0, "hi")
    assert not (busybox_layer / "written").exists()
    upper = rt.upper_dir("iso-files")
    assert upper == roots.state / "containers" / "iso-files" / "upper"
    assert (upper / "written").read_text() == "hi\n"
    await rt.delete("iso-files")
    assert not upper.exists()
    assert not (roots.state / "containers" / "iso-files").exists()
    assert not (roots.run / "containers" / "iso-files").exists()


async def test_network_namespace_is_new_and_reachable_before_start(rt, make_spec):
    import os

    state = await rt.create(make_spec("iso-net", "sh", "-c", "ls /sys/class/net"))
    assert state.status == "created"
    assert state.netns_path is not None
    assert os.stat(state.netns_path).st_ino != os.stat("/proc/self/ns/net").st_ino
    await rt.start("iso-net")
    await rt.wait("iso-net")
    lines = [r.line async for r in rt.logs("iso-net")]
    assert lines == ["lo"]
    await rt.delete("iso-net")


async def test_cgroup_namespace_hides_the_hosts_cgroup_paths(rt, make_spec):
    _, out, _ = await run_to_end(rt, make_spec("iso-cgns", "cat", "/proc/self/cgroup"))
    lines = out.splitlines()
    assert lines and all(line.endswith(":/") for line in lines)


async def test_joining_another_containers_network_and_ipc_namespaces(rt, make_spec):
    from stackd.runtime.containerspec import Namespaces

    first = await rt.create(make_spec("iso-ns-a", "sleep", "30"))
    await rt.start("iso-ns-a")
    pid = first.pid
    _, out, _ = await run_to_end(rt, make_spec(
        "iso-ns-b", "sh", "-c", "for n in net ipc uts; do readlink /proc/self/ns/$n; done",
        namespaces=Namespaces(net=f"/proc/{pid}/ns/net", ipc=f"/proc/{pid}/ns/ipc")))
    import os

    net, ipc, uts = out.splitlines()
    assert net == os.readlink(f"/proc/{pid}/ns/net")
    assert ipc == os.readlink(f"/proc/{pid}/ns/ipc")
    assert uts != os.readlink(f"/proc/{pid}/ns/uts")
    await rt.delete("iso-ns-a", force=True)


async def test_joining_a_running_containers_pid_and_ipc_namespaces_by_its_id(rt, make_spec):
    """`container:<id>` (Compose's `pid: service:x`): its processes, its System V and
    POSIX shared memory (the /dev/shm of its mount namespace, as Docker's)."""
    import os

    from stackd.errors import ConflictError
    from stackd.runtime.containerspec import Namespaces

    shared = Namespaces(pid="container:iso-share-a", ipc="container:iso-share-a")
    with pytest.raises(ConflictError, match="'iso-share-a', which is not running"):
        await rt.create(make_spec("iso-share-b", "true", namespaces=shared))
    first = await rt.create(make_spec(
        "iso-share-a", "sh", "-c", "echo from-a > /dev/shm/mark; exec sleep 30"))
    with pytest.raises(ConflictError, match="not running"):  # created is not running
        await rt.create(make_spec("iso-share-b", "true", namespaces=shared))
    await rt.start("iso-share-a")
    pid = first.pid
    try:
        _, out, _ = await run_to_end(rt, make_spec(
            "iso-share-b", "sh", "-c",
            "readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc; cat /proc/1/cmdline;"
            " echo; until cat /dev/shm/mark 2>/dev/null; do sleep 0.05; done",
            namespaces=shared))
        pidns, ipcns, one, mark = out.splitlines()
        assert pidns == os.readlink(f"/proc/{pid}/ns/pid")
        assert ipcns == os.readlink(f"/proc/{pid}/ns/ipc")
        assert one.replace("\0", " ").strip() == "sleep 30"  # a's process is its PID 1
        assert mark == "from-a"
    finally:
        await rt.delete("iso-share-a", force=True)


async def test_a_donor_that_swapped_its_dev_shm_for_a_link_shares_nothing_of_the_host(
        rt, make_spec, tmp_path):
    """A privileged container can make its /dev/shm a link; with the host's PIDs, one
    to /proc/self/root (whoever follows it: its root). A container joining its IPC
    namespace was given what the link led to, writable, as its /dev/shm (here the
    donor's whole root); now it is refused, saying why."""
    from stackd.errors import SpecError
    from stackd.runtime.containerspec import Namespaces, Security

    ready = tmp_path / "ready"
    ready.mkdir()
    donor = make_spec(
        "iso-shm-link-a", "sh", "-c",
        "umount /dev/shm && rmdir /dev/shm && ln -s /proc/self/root /dev/shm"
        " && touch /ready/done; exec sleep 30",
        namespaces=Namespaces(pid="host"), security=Security(privileged=True))
    donor = donor.model_copy(update={"mounts": (
        *donor.mounts, Mount(type="bind", source=str(ready), target="/ready"))})
    await rt.create(donor)
    try:
        await rt.start("iso-shm-link-a")
        for _ in range(200):
            if (ready / "done").exists():
                break
            await trio.sleep(0.025)
        assert (ready / "done").exists()
        joiner = make_spec("iso-shm-link-b", "ls", "/dev/shm/",
                           namespaces=Namespaces(ipc="container:iso-shm-link-a"))
        try:
            _, out, _ = await run_to_end(rt, joiner)
        except SpecError as e:
            assert "/dev/shm of the container whose IPC namespace" in e.message
        else:
            # It ran: what it was given as /dev/shm (the host's root, before the fix).
            pytest.fail(f"joined with /dev/shm holding {out.split()}")
        assert "iso-shm-link-b" not in [c.id for c in await rt.list()]
    finally:
        await rt.delete("iso-shm-link-a", force=True)


async def test_terminal(rt, make_spec):
    _, out, _ = await run_to_end(rt, make_spec(
        "iso-tty", "sh", "-c", "test -t 0 && test -t 1 && echo on-a-tty; echo TERM=$TERM",
        terminal=True))
    assert [line.rstrip("\r") for line in out.splitlines()] == ["on-a-tty", "TERM=xterm"]
