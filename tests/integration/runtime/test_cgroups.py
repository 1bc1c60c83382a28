"""Resource limits on real busybox containers (the host's cgroup v1 hierarchies), and
the cgroup v2 implementation on the host's cgroup2 mount."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio
from runtime_helpers import run_to_end

from stackd.errors import HostError, SpecError
from stackd.hostnames import cgroup_relpath
from stackd.runtime.cgroups import (
    CgroupV2,
    devicefilter,
    host_mounts,
    parse_mounts,
    remove_root_parents,
)
from stackd.runtime.cgroups.settings import (
    shares_to_weight,
    v1_writes,
    v2_writes,
    weight_write,
)
from stackd.runtime.containerspec import BlkioLimit, Device, Resources, Security

pytestmark = pytest.mark.root

MiB = 1024 * 1024


async def test_memory_hog_is_oom_killed_and_reported(rt, make_spec):
    exit_status, _, _ = await run_to_end(rt, make_spec(
        "cg-oom", "sh", "-c", "a=xxxxxxxxxxxxxxxx; while true; do a=$a$a; done",
        resources=Resources(memory=32 * MiB, memory_swap=32 * MiB)))
    assert exit_status.oom_killed
    assert exit_status.signal == 9


async def test_exit_without_oom_is_not_reported_as_oom(rt, make_spec):
    exit_status, _, _ = await run_to_end(rt, make_spec(
        "cg-nooom", "sh", "-c", "sleep 10 & kill -9 $!; wait $!",
        resources=Resources(memory=32 * MiB)))
    assert (exit_status.code, exit_status.oom_killed) == (137, False)


def _pids_dir(roots, cid: str) -> Path:  # type: ignore[no-untyped-def]
    mounts = host_mounts()
    base = mounts.v1.get("pids", mounts.v2)
    assert base is not None
    return base / cgroup_relpath(roots.id, cid)


async def test_fork_bomb_is_held_by_the_pids_limit(rt, make_spec, roots):
    await rt.create(make_spec("cg-bomb", "sh", "-c", "f() { f | f & }; f; sleep 30",
                              resources=Resources(pids_limit=24)))
    await rt.start("cg-bomb")
    counts = []
    for _ in range(10):
        await trio.sleep(0.1)
        counts.append((await rt.stats("cg-bomb")).pids)
    assert max(counts) <= 24
    # It did try: the kernel refused forks at the limit. (Not a sampled count near 24:
    # the bomb can collapse to a dozen blocked shells before the first sample, as it
    # did once under two CI runs' load.)
    events = dict(line.split() for line in
                  (_pids_dir(roots, "cg-bomb") / "pids.events").read_text().splitlines())
    assert int(events["max"]) > 0
    errors = [r.line async for r in rt.logs("cg-bomb") if r.stream == "stderr"]
    assert any("can't fork" in line for line in errors)
    # The host is fine and the container can still be stopped.
    await rt.delete("cg-bomb", force=True)


async def test_cpu_quota_throttles_a_busy_loop(rt, make_spec, roots):
    await rt.create(make_spec("cg-cpu", "sh", "-c", "while :; do :; done",
                              resources=Resources(cpu_quota=20_000, cpu_period=100_000)))
    await rt.start("cg-cpu")
    before = await rt.stats("cg-cpu")
    t0 = trio.current_time()
    await trio.sleep(1.0)
    after = await rt.stats("cg-cpu")
    wall = trio.current_time() - t0
    used = (after.cpu_ns - before.cpu_ns) / 1e9
    # 20% of one CPU: a busy loop gets about 0.2 s per second, never a whole second.
    assert 0.01 < used / wall < 0.4
    cpu_dir = host_mounts().v1["cpu"] / cgroup_relpath(roots.id, "cg-cpu")
    stat = dict(line.split() for line in (cpu_dir / "cpu.stat").read_text().splitlines())
    assert int(stat["nr_throttled"]) > 0
    await rt.delete("cg-cpu", force=True)


async def test_limits_and_usage_readings(rt, make_spec, roots):
    await rt.create(make_spec("cg-set", "sh", "-c", "head -c 20000000 /dev/zero > /dev/shm/x; "
                              "echo ok; sleep 30 & wait",
                              resources=Resources(memory=64 * MiB, memory_swap=64 * MiB,
                                                  cpu_shares=512, cpuset_cpus="0",
                                                  pids_limit=50)))
    await rt.start("cg-set")
    async for rec in rt.logs("cg-set", follow=True):
        if rec.line == "ok":
            break
    v1 = host_mounts().v1
    rel = cgroup_relpath(roots.id, "cg-set")
    assert (v1["memory"] / rel / "memory.limit_in_bytes").read_text().strip() == str(64 * MiB)
    assert (v1["memory"] / rel / "memory.memsw.limit_in_bytes").read_text().strip() == str(
        64 * MiB)
    assert (v1["cpu"] / rel / "cpu.shares").read_text().strip() == "512"
    assert (v1["cpuset"] / rel / "cpuset.cpus").read_text().strip() == "0"
    assert (v1["pids"] / rel / "pids.max").read_text().strip() == "50"
    stats = await rt.stats("cg-set")
    assert stats.memory_bytes >= 19 * MiB  # the shm file is charged to the container
    assert stats.pids == 2
    assert stats.cpu_ns > 0
    await rt.delete("cg-set", force=True)
    assert not (v1["memory"] / rel).exists()


# /dev/loop-control: openable by root with no capability beyond the file's mode, and
# not in Docker's allow-list, so only the device cgroup decides whether it opens.
# (/dev/kmsg would not show it: with dmesg_restrict it needs CAP_SYSLOG anyway.)
OPEN_LOOP_CONTROL = "mknod /tmp/lc c 10 237 && : < /tmp/lc && echo opened"


async def test_unknown_devices_are_denied_by_the_devices_cgroup(rt, make_spec):
    # Root in the container may make any node (MKNOD is a default capability, as
    # Docker's); the device cgroup keeps it from opening one it was not given.
    _, out, err = await run_to_end(rt, make_spec("cg-dev", "sh", "-c", OPEN_LOOP_CONTROL))
    assert "Operation not permitted" in err
    assert out == ""
    # What the cgroup stands between: privileged, the same node opens.
    _, out, err = await run_to_end(rt, make_spec(
        "cg-dev-privileged", "sh", "-c", OPEN_LOOP_CONTROL,
        security=Security(privileged=True)))
    assert out == "opened", err


async def test_swappiness_oom_kill_disable_and_device_rules_on_v1(rt, make_spec, roots):
    """Compose's mem_swappiness, oom_kill_disable and device_cgroup_rules: the node
    Docker's list refuses (above) opens with a rule for it, and only for it."""
    _, out, err = await run_to_end(rt, make_spec(
        "cg-extra", "sh", "-c",
        f"{OPEN_LOOP_CONTROL}; mknod /tmp/loop0 b 7 0 && : < /tmp/loop0 && echo loop0",
        resources=Resources(memory=64 * MiB, memory_swappiness=7, oom_kill_disable=True),
        device_cgroup_rules=("c 10:237 r",)), keep=True)
    assert out == "opened" and "Operation not permitted" in err, (out, err)
    v1 = host_mounts().v1
    rel = cgroup_relpath(roots.id, "cg-extra")
    assert (v1["memory"] / rel / "memory.swappiness").read_text().strip() == "7"
    assert "oom_kill_disable 1" in (v1["memory"] / rel / "memory.oom_control").read_text()
    assert "c 10:237 r" in (v1["devices"] / rel / "devices.list").read_text()
    await rt.delete("cg-extra", force=True)


def test_resources_map_onto_v1_and_v2_files():
    res = Resources(memory=64 * MiB, memory_swap=96 * MiB, cpu_quota=50_000, cpu_shares=1024,
                    pids_limit=10, cpuset_cpus="0-1")
    assert v1_writes(res) == [
        ("memory", "memory.limit_in_bytes", str(64 * MiB)),
        ("memory", "memory.memsw.limit_in_bytes", str(96 * MiB)),
        ("cpu", "cpu.cfs_period_us", "100000"),
        ("cpu", "cpu.cfs_quota_us", "50000"),
        ("cpu", "cpu.shares", "1024"),
        ("pids", "pids.max", "10"),
        ("cpuset", "cpuset.cpus", "0-1"),
    ]
    assert v2_writes(res) == [
        ("memory", "memory.max", str(64 * MiB)),
        ("memory", "memory.swap.max", str(32 * MiB)),
        ("cpu", "cpu.max", "50000 100000"),
        ("cpu", "cpu.weight", "39"),
        ("pids", "pids.max", "10"),
        ("cpuset", "cpuset.cpus", "0-1"),
    ]
    assert v2_writes(Resources(memory_swap=-1)) == [("memory", "memory.swap.max", "max")]
    assert (shares_to_weight(2), shares_to_weight(262144)) == (1, 10000)


@pytest.fixture
def loop_device(tmp_path):
    from support.loopdev import loop_device

    with loop_device(tmp_path) as dev:
        yield dev


async def test_blkio_throttle_slows_a_containers_reads_of_the_device(
        rt, make_spec, roots, loop_device):
    """Compose's blkio_config.device_read_bps: 512 KiB read directly from the device at
    256 KiB/s take two seconds (milliseconds unthrottled); the limit is the kernel's,
    on the device's numbers, in the container's own blkio cgroup, gone with it."""
    st = Path(loop_device).stat()
    numbers = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    spec = make_spec("cg-blkio", "dd", "if=/dev/xvdb", "of=/dev/null", "bs=64k", "count=8",
                     "iflag=direct",
                     devices=(Device(source=loop_device, target="/dev/xvdb"),),
                     resources=Resources(blkio_devices=(
                         BlkioLimit(path=loop_device, limit="read_bps", value=256 * 1024),
                         BlkioLimit(path=loop_device, limit="write_iops", value=20))))
    start = time.monotonic()
    await rt.create(spec)
    blkio = host_mounts().v1["blkio"] / cgroup_relpath(roots.id, "cg-blkio")
    assert (blkio / "blkio.throttle.read_bps_device").read_text().split() == [
        numbers, str(256 * 1024)]
    assert (blkio / "blkio.throttle.write_iops_device").read_text().split() == [numbers, "20"]
    await rt.start("cg-blkio")
    exit_status = await rt.wait("cg-blkio")
    elapsed = time.monotonic() - start
    await rt.delete("cg-blkio")
    assert exit_status.code == 0
    assert elapsed > 1.5, elapsed
    assert not blkio.exists()


async def test_block_io_is_counted_without_any_blkio_limit(rt, make_spec, roots, loop_device):
    """`stats`' BLOCK I/O read 0B for every container on a cgroup v1 host unless it had a
    blkio_config: only those joined the blkio hierarchy the bytes are counted in."""
    spec = make_spec("cg-bytes", "sh", "-c", "dd if=/dev/xvdb of=/dev/null bs=64k count=8 "
                     "iflag=direct 2>/dev/null && echo read && sleep 30",
                     devices=(Device(source=loop_device, target="/dev/xvdb"),))
    await rt.create(spec)
    await rt.start("cg-bytes")
    async for rec in rt.logs("cg-bytes", follow=True):
        if rec.line == "read":
            break
    stats = await rt.stats("cg-bytes")
    await rt.delete("cg-bytes", force=True)
    assert stats.block_read >= 512 * 1024, stats
    assert not (host_mounts().v1["blkio"] / cgroup_relpath(roots.id, "cg-bytes")).exists()


async def test_blkio_limits_refuse_a_file_that_is_no_block_device(rt, make_spec):
    spec = make_spec("cg-blkio-bad", "true", resources=Resources(blkio_devices=(
        BlkioLimit(path="/dev/null", limit="read_bps", value=1024),)))
    with pytest.raises(HostError, match=r"blkio_config\.device_read_bps: /dev/null is not a "
                                        r"block device"):
        await rt.create(spec)
    assert [c.id for c in await rt.list()] == []


async def test_blkio_weight_is_written_or_refused_as_the_kernel_has_it(rt, make_spec, roots):
    """CFQ's blkio.weight is gone since 5.0; BFQ's stands in. A kernel with neither
    refuses the container, naming the key, rather than dropping the weight."""
    mount = host_mounts().v1["blkio"]
    spec = make_spec("cg-weight", "true", resources=Resources(blkio_weight=300))
    has = [f for f in ("blkio.weight", "blkio.bfq.weight") if (mount / f).exists()]
    if not has:
        with pytest.raises(HostError, match="blkio_config: this host's kernel has no block "
                                            "I/O weight"):
            await rt.create(spec)
        assert [c.id for c in await rt.list()] == []
        assert not (mount / cgroup_relpath(roots.id, "cg-weight")).exists()
        return
    await rt.create(spec)
    try:
        text = (mount / cgroup_relpath(roots.id, "cg-weight") / has[0]).read_text()
        assert "300" in text
    finally:
        await rt.delete("cg-weight", force=True)


def test_an_io_weight_goes_to_the_file_the_kernel_has(tmp_path):
    assert weight_write(str(tmp_path), "blkio.throttle.read_bps_device", "7:0 1") == (
        "blkio.throttle.read_bps_device", "7:0 1")
    assert weight_write(str(tmp_path), "blkio.weight", "300") is None
    (tmp_path / "blkio.bfq.weight").touch()
    assert weight_write(str(tmp_path), "blkio.weight", "300") == ("blkio.bfq.weight", "300")
    (tmp_path / "blkio.weight").touch()
    assert weight_write(str(tmp_path), "blkio.weight", "300") == ("blkio.weight", "300")
    # v2: BFQ's weight has blkio's scale, io.cost's io.weight 1..10000.
    (tmp_path / "io.weight").touch()
    assert weight_write(str(tmp_path), "io.bfq.weight", "default 10") == ("io.weight",
                                                                          "default 1")
    assert weight_write(str(tmp_path), "io.bfq.weight", "8:0 1000") == ("io.weight",
                                                                        "8:0 10000")
    (tmp_path / "io.bfq.weight").touch()
    assert weight_write(str(tmp_path), "io.bfq.weight", "8:0 500") == ("io.bfq.weight",
                                                                       "8:0 500")


def test_blkio_limits_map_onto_v1_and_v2_files():
    res = Resources(blkio_weight=300, blkio_devices=(
        BlkioLimit(path="/dev/sda", limit="weight", value=400, major=8, minor=0),
        BlkioLimit(path="/dev/sda", limit="read_bps", value=1024, major=8, minor=0),
        BlkioLimit(path="/dev/sda", limit="write_iops", value=5, major=8, minor=0)))
    assert v1_writes(res) == [
        ("blkio", "blkio.weight", "300"),
        ("blkio", "blkio.weight_device", "8:0 400"),
        ("blkio", "blkio.throttle.read_bps_device", "8:0 1024"),
        ("blkio", "blkio.throttle.write_iops_device", "8:0 5"),
    ]
    assert v2_writes(res) == [
        ("io", "io.bfq.weight", "default 300"),
        ("io", "io.bfq.weight", "8:0 400"),
        ("io", "io.max", "8:0 rbps=1024"),
        ("io", "io.max", "8:0 wiops=5"),
    ]


def test_hybrid_host_detection():
    mounts = parse_mounts(
        "cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0\n"
        "cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\n"
        "cgroup /sys/fs/cgroup/systemd cgroup rw,name=systemd 0 0\n"
        "cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n")
    assert mounts.v1 == {"memory": Path("/sys/fs/cgroup/memory"),
                         "cpu": Path("/sys/fs/cgroup/cpu,cpuacct"),
                         "cpuacct": Path("/sys/fs/cgroup/cpu,cpuacct")}
    assert mounts.v2 == Path("/sys/fs/cgroup/unified")
    pure_v2 = parse_mounts("cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n")
    assert pure_v2.v1 == {} and pure_v2.v2 == Path("/sys/fs/cgroup")


@pytest.fixture
def v2_cgroup(roots, no_leaks):
    """A CgroupV2 on the host's cgroup2 mount (on this hybrid host, /sys/fs/cgroup/unified,
    which holds no controller but hugetlb)."""
    mount = host_mounts().v2
    if mount is None:
        pytest.skip("no cgroup2 mount on this host")
    cg = CgroupV2(mount, cgroup_relpath(roots.id, "v2test"))
    yield cg
    cg.kill_all()
    cg.destroy()
    remove_root_parents(roots.id)


def test_cgroup_v2_membership_freeze_kill_and_cpu_usage(v2_cgroup):
    v2_cgroup.create()
    proc = subprocess.Popen(["sh", "-c", "while :; do :; done"])
    try:
        v2_cgroup.join(proc.pid)
        assert v2_cgroup.pids() == [proc.pid]
        time.sleep(0.2)
        stats = v2_cgroup.stats()
        assert stats.pids == 1 and stats.cpu_ns > 10_000_000  # cpu.stat usage_usec
        v2_cgroup.freeze(True)
        for _ in range(100):
            if v2_cgroup.frozen():
                break
            time.sleep(0.01)
        assert v2_cgroup.frozen()
        frozen_usage = v2_cgroup.stats().cpu_ns
        time.sleep(0.2)
        assert v2_cgroup.stats().cpu_ns - frozen_usage < 5_000_000
        v2_cgroup.freeze(False)
        v2_cgroup.kill_all()  # cgroup.kill
        assert proc.wait(timeout=5) == -9
        assert v2_cgroup.oom_kills() == 0  # no memory controller here: reads as none
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cgroup_v2_refuses_limits_whose_controller_is_elsewhere(v2_cgroup):
    v2_cgroup.create()
    available = v2_cgroup.available_controllers()
    if "memory" in available:
        pytest.skip("this cgroup2 hierarchy has the memory controller")
    with pytest.raises(HostError, match="memory controller is not available in the cgroup2"):
        v2_cgroup.apply(Resources(memory=64 * MiB))


def test_cgroup_v2_destroy_then_root_parent_removal(v2_cgroup, roots):
    v2_cgroup.create()
    v2_cgroup.destroy()
    assert not v2_cgroup.dir.exists()
    assert v2_cgroup.dir.parent.exists()  # kept for the next container
    remove_root_parents(roots.id)
    assert not v2_cgroup.dir.parent.exists()  # stackd/<root id>


async def test_a_limit_the_kernel_refuses_fails_create_and_leaves_nothing(rt, make_spec):
    with pytest.raises(HostError, match=r"cpuset\.cpus"):
        await rt.create(make_spec("cg-bad", "true", resources=Resources(cpuset_cpus="99")))
    assert await rt.list() == []


def test_a_parent_with_a_live_child_is_left_at_once(roots):
    # cgroupfs refuses rmdir of a parent with EBUSY, the same error as a child still
    # going offline: a monitor exiting while other roots run must not wait that out.
    mounts = host_mounts()
    parent = next(iter(mounts.stackd_dirs())) / roots.id
    child = parent / "still-running"
    child.mkdir(parents=True)
    try:
        t0 = time.monotonic()
        remove_root_parents(roots.id, mounts)
        elapsed = time.monotonic() - t0
        assert child.is_dir()
        assert elapsed < 0.5, f"removing parents took {elapsed:.2f}s"
    finally:
        child.rmdir()
        remove_root_parents(roots.id, mounts)
    assert not parent.exists()


def _try_devices(cg: CgroupV2, workdir: Path) -> dict[str, str]:
    """From a process in `cg`: make nodes in `workdir` (a filesystem that allows device
    nodes) and open them; what each attempt did ("ok" or the errno's name)."""
    script = f"""
import errno, os, stat, sys
out = {{}}
def attempt(name, fn):
    try:
        fn()
        out[name] = "ok"
    except OSError as e:
        out[name] = errno.errorcode[e.errno]
def node(name, kind, major, minor):
    path = os.path.join({str(workdir)!r}, name)
    attempt("mknod " + name, lambda: os.mknod(path, kind | 0o600, os.makedev(major, minor)))
    attempt("open " + name, lambda: os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK)))
sys.stdin.readline()  # in the cgroup by now
node("null", stat.S_IFCHR, 1, 3)
node("kmsg", stat.S_IFCHR, 1, 11)
node("loop0", stat.S_IFBLK, 7, 0)
node("loopctl", stat.S_IFCHR, 10, 237)
print(repr(out))
"""
    workdir.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        cg.join(proc.pid)
        out, _ = proc.communicate("go\n", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return ast.literal_eval(out)


def test_cgroup_v2_devices_are_limited_by_an_ebpf_program(v2_cgroup, tmp_path, roots):
    """cgroup v2 has no devices controller: without a program, root in a container
    could make /dev/sda's node and read the disk. The program allows what devices.allow
    would on v1: Docker's defaults and the container's own devices."""
    if not Path("/dev/loop-control").exists():
        pytest.skip("no /dev/loop-control on this host")
    v2_cgroup.create()
    loopctl = Device(source="/dev/loop-control", target="/dev/loop-control", type="c",
                     major=10, minor=237)
    v2_cgroup.apply(Resources(), devices=(loopctl,))
    got = _try_devices(v2_cgroup, tmp_path / "plain")  # made in the directory below
    assert got == {
        "mknod null": "ok", "open null": "ok",  # Docker's defaults: c 1:3 rwm
        "mknod kmsg": "ok", "open kmsg": "EPERM",  # c *:* m, and no more
        "mknod loop0": "ok", "open loop0": "EPERM",  # a block device of the host
        "mknod loopctl": "ok", "open loopctl": "ok",  # the container's own device
    }
    # The filter stays when what attached it is gone (a monitor killed): it is the
    # cgroup's, not a descriptor's. A privileged container's cgroup gets none; a
    # device_cgroup_rules line adds to the list.
    for name, apply, opens in (
            ("privileged", {"privileged": True}, {"open loop0": "ok", "open kmsg": "ok"}),
            ("rules", {"rules": ("b 7:0 r",)}, {"open loop0": "ok", "open kmsg": "EPERM"})):
        other = CgroupV2(v2_cgroup.mount, cgroup_relpath(roots.id, f"v2test-{name}"))
        other.create()
        try:
            other.apply(Resources(), **apply)
            got = _try_devices(other, tmp_path / name)
            assert {k: got[k] for k in opens} == opens, name
        finally:
            other.kill_all()
            other.destroy()
    # What only v1 has is refused by name on v2, not dropped.
    with pytest.raises(HostError, match="mem_swappiness, oom_kill_disable: cgroup v2 has"):
        v2_cgroup.apply(Resources(memory_swappiness=0, oom_kill_disable=True))


def test_device_rules_are_refused_unless_well_formed() -> None:
    for rule in ("c 1:3", "x 1:3 rwm", "c 1-3 rwm", "c 1:3 rwx", "c a:3 r"):
        with pytest.raises(SpecError, match="is not `TYPE MAJOR:MINOR ACCESS`"):
            devicefilter.program([rule])
    assert devicefilter.program(["a *:* rwm", "c 188:* rw"]).assemble()
