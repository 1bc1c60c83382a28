"""The root filesystem: overlay + pivot_root, /dev, /proc, /sys, masked and read-only
paths, read-only root, bind mounts, named volumes, tmpfs mounts and given files."""

from __future__ import annotations

import os
from pathlib import Path

import pydantic
import pytest
from runtime_helpers import run_to_end

from stackd.errors import SpecError, StackdError
from stackd.runtime import syscalls as sc
from stackd.runtime.containerspec import Mount, Resources, Security

pytestmark = pytest.mark.root


async def test_read_only_root_refuses_writes(rt, make_spec):
    _, out, err = await run_to_end(rt, make_spec(
        "fs-ro", "sh", "-c", "touch /newfile || echo refused; touch /scratch/ok && echo scratch",
        readonly_rootfs=True, mounts=(Mount(type="tmpfs", target="/scratch"),)))
    assert out.splitlines() == ["refused", "scratch"]
    assert "Read-only file system" in err


async def test_masked_and_read_only_paths(rt, make_spec):
    # /proc/kcore and /proc/sysrq-trigger do not exist on this kernel; the others do.
    _, out, err = await run_to_end(rt, make_spec("fs-mask", "sh", "-c", "; ".join([
        "wc -c < /proc/keys",
        "wc -c < /proc/timer_list",
        "ls -A /sys/firmware | wc -l",
        "ls -A /proc/acpi | wc -l",
        "echo 1 > /proc/sys/vm/drop_caches && echo WROTE-SYS",
        "touch /sys/x 2>/dev/null || echo sys-ro",
    ])))
    assert out.splitlines() == ["0", "0", "0", "0", "sys-ro"]
    assert "Read-only file system" in err


async def test_privileged_has_no_masks_and_the_host_devices(rt, make_spec):
    # /dev/kmsg (1:11) is readable by root on this host but not in Docker's allow-list.
    _, out, _ = await run_to_end(rt, make_spec("fs-priv", "sh", "-c", "; ".join([
        "ls -A /sys/firmware | wc -l",
        "test -b /dev/vda && echo has-vda",
        "dd if=/dev/kmsg bs=8192 count=1 2>/dev/null | wc -c",
    ]), security=Security(privileged=True)))
    firmware, has_vda, read = out.splitlines()
    assert int(firmware) > 0
    assert has_vda == "has-vda"
    assert int(read) > 0


async def test_dev_holds_the_usual_nodes_and_mounts(rt, make_spec):
    _, out, _ = await run_to_end(rt, make_spec("fs-dev", "sh", "-c", "; ".join([
        "ls /dev | tr '\\n' ' '",
        "echo",
        "for l in fd stdin ptmx; do readlink /dev/$l; done | tr '\\n' ' '",
        "echo",
        "head -c 4 /dev/zero | wc -c",
        "grep -E ' /dev/(pts|shm|mqueue) ' /proc/mounts | cut -d' ' -f1-3 | tr '\\n' ';'",
        "echo",
        "df -k /dev/shm | tail -1 | awk '{print $2}'",
    ]), resources=Resources(shm_size=8 * 1024 * 1024)))
    names, links, zeros, mounts, shm_kib = out.splitlines()
    for node in ("null", "zero", "full", "random", "urandom", "tty", "fd", "stdin", "stdout",
                 "stderr", "pts", "ptmx", "shm", "mqueue"):
        assert node in names.split()
    assert links.split() == ["/proc/self/fd", "/proc/self/fd/0", "pts/ptmx"]
    assert zeros == "4"
    assert mounts == "devpts /dev/pts devpts;shm /dev/shm tmpfs;mqueue /dev/mqueue mqueue;"
    assert shm_kib == "8192"


def mountinfo(text: str) -> list[tuple[str, str, str, str]]:
    """(major:minor, root within its filesystem, mount point, fs type) per line."""
    out = []
    for line in text.splitlines():
        fields = line.split()
        fstype = fields[fields.index("-") + 1]
        out.append((fields[2], fields[3], fields[4], fstype))
    return out


async def test_pivot_root_leaves_no_way_back_to_the_host(rt, make_spec, roots):
    _, out, _ = await run_to_end(rt, make_spec("fs-pivot", "sh", "-c", "; ".join([
        f"ls {roots.state} 2>&1 | head -1",
        "stat -c %d:%i / /.. /proc/1/root/.. | tr '\\n' ' '",
        "echo",
        "cat /proc/self/mountinfo",
    ])))
    first, inodes, *mounts = out.splitlines()
    assert "No such file or directory" in first
    root, dotdot, init_dotdot = inodes.split()
    assert root == dotdot == init_dotdot  # `..` of / is / itself, also via PID 1's root
    inside = mountinfo("\n".join(mounts))
    # One mount at /, the container's overlay: the host's root is not stacked under or
    # over it (as a pivot_root without detaching the old root leaves it).
    assert [fs for _, _, point, fs in inside if point == "/"] == ["overlay"]
    # And the host's root file system is mounted nowhere at its own root.
    host_root = [(dev, fsroot) for dev, fsroot, point, _ in
                 mountinfo(Path("/proc/self/mountinfo").read_text()) if point == "/"][-1]
    assert host_root not in [(dev, fsroot) for dev, fsroot, _, _ in inside], inside


async def test_bind_mounts_read_only_and_read_write(rt, make_spec, tmp_path):
    rw = tmp_path / "rw"
    ro = tmp_path / "ro"
    rw.mkdir()
    (ro / "sub").mkdir(parents=True)
    (ro / "config").write_text("from host\n")
    # A mount below the read-only bind's source: it comes along (MS_REC) and must be
    # read-only too, not only the top.
    sc.mount("stackd-test", str(ro / "sub"), "tmpfs", sc.MS_NOSUID | sc.MS_NODEV, "size=1m")
    try:
        (ro / "sub" / "in-sub").write_text("in the submount\n")
        _, out, _ = await run_to_end(rt, make_spec("fs-bind", "sh", "-c", "; ".join([
            "cat /etc/app/config",
            "echo nope > /etc/app/config || echo ro-refused",
            "cat /etc/app/sub/in-sub",
            "echo nope > /etc/app/sub/in-sub || echo sub-ro-refused",
            "touch /etc/app/sub/new || echo sub-new-refused",
            "echo written > /data/out",
        ]), mounts=(Mount(type="bind", source=str(ro), target="/etc/app", readonly=True),
                    Mount(type="bind", source=str(rw), target="/data"))))
        assert out.splitlines() == ["from host", "ro-refused", "in the submount",
                                    "sub-ro-refused", "sub-new-refused"]
        assert (ro / "sub" / "in-sub").read_text() == "in the submount\n"
        assert sorted(os.listdir(ro / "sub")) == ["in-sub"]
    finally:
        sc.umount2(str(ro / "sub"), sc.MNT_DETACH)
    assert (rw / "out").read_text() == "written\n"
    assert (ro / "config").read_text() == "from host\n"


async def test_named_volume_is_seeded_from_the_image_on_first_use(rt, make_spec, tmp_path):
    vol = tmp_path / "volume"
    vol.mkdir()
    spec = make_spec("fs-vol", "sh", "-c", "cat /var/www/index.html; echo more > /var/www/new",
                     mounts=(Mount(type="volume", source=str(vol), target="/var/www"),))
    _, out, _ = await run_to_end(rt, spec)
    assert out == "hello from busybox"
    assert (vol / "index.html").read_text() == "hello from busybox\n"
    assert (vol / "new").read_text() == "more\n"
    # Second use: the volume is not empty, nothing is copied over what is there.
    (vol / "index.html").write_text("changed\n")
    _, out, _ = await run_to_end(rt, spec)
    assert out == "changed"


async def test_tmpfs_mount_with_size_and_mode(rt, make_spec):
    _, out, _ = await run_to_end(rt, make_spec("fs-tmpfs", "sh", "-c",
                                               "stat -c %a /cache; df -k /cache | tail -1",
                                               mounts=(Mount(type="tmpfs", target="/cache",
                                                             size=4 * 1024 * 1024,
                                                             mode=0o750),)))
    mode, df = out.splitlines()
    assert mode == "750"
    assert df.split()[1] == "4096"


async def test_given_files_hosts_resolv_conf_hostname(rt, make_spec):
    files = {"/etc/hosts": "127.0.0.1 localhost\n10.0.0.2 web\n",
             "/etc/resolv.conf": "nameserver 10.0.0.1\n",
             "/etc/hostname": "web-1\n",
             "/run/secrets/token": "s3cret\n"}
    _, out, _ = await run_to_end(rt, make_spec("fs-files", "sh", "-c", "; ".join([
        "cat /etc/hosts /etc/resolv.conf /etc/hostname /run/secrets/token",
        "echo '10.0.0.3 db' >> /etc/hosts && echo hosts-writable",
        "echo x > /run/secrets/token || echo secret-ro",
    ]), files=files))
    assert out.splitlines() == ["127.0.0.1 localhost", "10.0.0.2 web", "nameserver 10.0.0.1",
                                "web-1", "s3cret", "hosts-writable", "secret-ro"]


async def test_tmpfs_mount_noexec_and_owner(rt, make_spec):
    # Docker mounts a tmpfs noexec unless `exec` is given; uid/gid own its root.
    script = ("cp /bin/busybox /t/true; /t/true && echo ran || echo refused; "
              "stat -c '%u:%g' /t")
    _, out, _ = await run_to_end(rt, make_spec("fs-tmpfs-noexec", "sh", "-c", script, mounts=(
        Mount(type="tmpfs", target="/t", noexec=True, uid=1000, gid=1001),)))
    assert out.splitlines() == ["refused", "1000:1001"]
    _, out, _ = await run_to_end(rt, make_spec("fs-tmpfs-exec", "sh", "-c", script, mounts=(
        Mount(type="tmpfs", target="/t"),)))
    assert out.splitlines() == ["ran", "0:0"]


async def test_volume_subpath_mounts_only_that_path(rt, make_spec, tmp_path):
    vol = tmp_path / "volume"
    (vol / "app" / "data").mkdir(parents=True)
    (vol / "app" / "data" / "kept").write_text("in data\n")
    (vol / "secret").write_text("elsewhere in the volume\n")
    (vol / "app" / "one.conf").write_text("a file\n")
    _, out, _ = await run_to_end(rt, make_spec("fs-subpath", "sh", "-c", "; ".join([
        "ls /data", "echo new > /data/new", "cat /etc/one.conf",
        "ls /data/../ | grep -c secret",
    ]), mounts=(Mount(type="volume", source=str(vol), target="/data", subpath="app/data"),
                Mount(type="volume", source=str(vol), target="/etc/one.conf",
                      subpath="app/one.conf", readonly=True))))
    assert out.splitlines() == ["kept", "a file", "0"]
    assert (vol / "app" / "data" / "new").read_text() == "new\n"
    assert sorted(os.listdir(vol)) == ["app", "secret"]  # nothing seeded into the volume


async def test_volume_subpath_links_resolve_inside_the_volume(rt, make_spec, tmp_path):
    # What a container wrote into a shared volume before cannot make another
    # container's subpath mount a directory of the host.
    vol = tmp_path / "volume"
    (vol / "etc").mkdir(parents=True)
    (vol / "etc" / "marker").write_text("the volume's own etc\n")
    (vol / "up").symlink_to("/etc")
    (vol / "dots").symlink_to("../../../../../../etc")
    for name in ("up", "dots"):
        _, out, _ = await run_to_end(rt, make_spec(f"fs-subpath-{name}", "ls", "/data",
                                                   mounts=(Mount(type="volume", source=str(vol),
                                                                 target="/data",
                                                                 subpath=name),)))
        assert out == "marker", name


async def test_volume_subpath_that_is_missing_is_refused(rt, make_spec, tmp_path):
    vol = tmp_path / "volume"
    vol.mkdir()
    with pytest.raises(SpecError) as err:
        await rt.create(make_spec("fs-subpath-missing", "true", mounts=(
            Mount(type="volume", source=str(vol), target="/data", subpath="not/there"),)))
    assert err.value.message == ("cannot mount subpath 'not/there' of the volume for /data: "
                                 "No such file or directory")
    assert await rt.list() == []
    assert os.listdir(vol) == []


@pytest.mark.parametrize("subpath", ["..", "a/../..", "/etc", "a//b"])
def test_volume_subpath_outside_is_not_a_spec(subpath):
    with pytest.raises(pydantic.ValidationError):
        Mount(type="volume", source="/v", target="/data", subpath=subpath)


async def test_a_volume_binding_a_host_directory_is_seeded_without_set_id_or_devices(
        rt, make_spec, busybox_layer, tmp_path):
    """An image's set-uid root file or a 0666 node of the host's disk, copied into a
    host directory other users may reach, would hand them root."""
    layer = tmp_path / "layer"
    (layer / "seedme").mkdir(parents=True)
    (layer / "seedme" / "tool").write_text("#!/bin/sh\n")
    os.chmod(layer / "seedme" / "tool", 0o4755)
    os.mknod(layer / "seedme" / "disk", 0o20666, os.makedev(7, 200))
    os.mkfifo(layer / "seedme" / "pipe")
    for plain, vol in ((True, tmp_path / "bound"), (False, tmp_path / "own")):
        vol.mkdir()
        spec = make_spec(f"fs-seed-{str(plain).lower()}", "true", mounts=(
            Mount(type="volume", source=str(vol), target="/seedme", seed_plain=plain),))
        spec = spec.model_copy(update={"layers": (str(layer), str(busybox_layer))})
        await run_to_end(rt, spec)
        names = sorted(os.listdir(vol))
        if plain:
            assert names == ["tool"]
            assert os.stat(vol / "tool").st_mode & 0o7777 == 0o755
        else:  # under the 0700 state root, as Docker copies it
            assert names == ["disk", "pipe", "tool"]
            assert os.stat(vol / "tool").st_mode & 0o7777 == 0o4755


async def test_an_image_of_many_layers_runs(rt, make_spec, busybox_layer, tmp_path):
    """mount(2) reads its options from one page: the layer paths of an image of ~40
    layers did not fit, and the container failed with "[Errno 2] mount overlay on …:
    No such file or directory". Past a page they go one by one (fsconfig)."""
    import hashlib

    layers = []
    for i in range(80):  # each named as a snapshot is: a long path
        d = tmp_path / "snapshots" / hashlib.sha256(str(i).encode()).hexdigest()
        d.mkdir(parents=True)
        (d / f"from-{i}").write_text(f"{i}\n")
        layers.append(str(d))
    os.chmod(tmp_path, 0o755)
    spec = make_spec("fs-many", "sh", "-c", "cat /from-0 /from-79; ls / | grep -c from-")
    spec = spec.model_copy(update={"layers": (*layers, *spec.layers)})
    assert len(":".join(spec.layers)) > 4096
    status, out, err = await run_to_end(rt, spec)
    assert (status.code, out.splitlines()) == (0, ["0", "79", "80"]), err


async def test_an_image_past_overlayfs_depth_is_refused_by_name(rt, make_spec, busybox_layer,
                                                                tmp_path):
    layers = []
    for i in range(501):
        d = tmp_path / "l" / str(i)
        d.mkdir(parents=True)
        layers.append(str(d))
    spec = make_spec("fs-deep", "true")
    spec = spec.model_copy(update={"layers": (*layers, *spec.layers)})
    with pytest.raises(StackdError, match="an image of 502 layers cannot be mounted: overlayfs "
                                        "stacks at most 500"):
        await rt.create(spec)


async def test_a_long_seed_keeps_its_time_while_it_works(rt, make_spec, busybox_layer, tmp_path,
                                                        monkeypatch):
    """A named volume seeded from a large image directory took longer than the
    monitor waits for a container's setup (30 s), and the create failed with "did not
    answer in time", the volume left half seeded. The child now says it works on; the
    monitor's wait is shortened here so that a few thousand files outlast it."""
    import time

    monkeypatch.setenv("STACKD_SETUP_TIMEOUT", "0.3")  # read by the monitor this test starts
    data = tmp_path / "layer" / "data"
    data.mkdir(parents=True)
    os.chmod(tmp_path, 0o755)
    for i in range(30_000):
        os.close(os.open(data / f"f{i}", os.O_WRONLY | os.O_CREAT, 0o644))
    vol = tmp_path / "volume"
    vol.mkdir()
    spec = make_spec("fs-seed", "sh", "-c", "ls /data | wc -l",
                     mounts=(Mount(type="volume", source=str(vol), target="/data"),))
    spec = spec.model_copy(update={"layers": (str(tmp_path / "layer"), *spec.layers)})
    t0 = time.monotonic()
    status, out, err = await run_to_end(rt, spec)
    assert time.monotonic() - t0 > 0.3  # the seed outlasted the wait
    assert (status.code, out.strip()) == (0, "30000"), err
