"""Images whose paths lead to the host, and read-only binds with submounts.

Each image here is busybox plus a few hostile (or legitimately tricky) symlinks,
imported into the test's root. `stackd up` runs it; afterwards the host directory the
links name must be byte-for-byte what it was, and the container must see its files
where the links lead *inside its own root*.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import CLI
from support.busybox import make_busybox_tar

from stackd.images import ImageConfig, ImageStore
from stackd.runtime import syscalls as sc

pytestmark = pytest.mark.root


def snapshot(top: Path) -> dict[str, tuple[int, int, int, bytes | str]]:
    """Every entry at and below `top` (links not followed): mode, owner, and the bytes
    of a file or the text of a link."""
    out: dict[str, tuple[int, int, int, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in ["", *dirnames, *filenames]:
            p = Path(dirpath) / name if name else Path(dirpath)
            st = p.lstat()
            body: bytes | str = os.readlink(p) if stat.S_ISLNK(st.st_mode) else \
                p.read_bytes() if stat.S_ISREG(st.st_mode) else ""
            out[str(p.relative_to(top))] = (st.st_mode, st.st_uid, st.st_gid, body)
    return out


@pytest.fixture
def host_dir(tmp_path: Path) -> Path:
    """A host directory an image's links point at: a secret, a subdirectory, and a
    symlink resolv.conf (what a careless unlink-and-create replaces)."""
    d = tmp_path / "hostdir"
    (d / "sub").mkdir(parents=True)
    (d / "secret").write_text("host secret\n")
    (d / "sub" / "keep").write_text("keep me\n")
    (d / "resolv.conf").symlink_to("../run/host-resolv.conf")
    return d


def craft_image(cli: CLI, tmp_path: Path, ref: str,
                entries: list[tuple[str, str | bytes]], *,
                drop: tuple[str, ...] = (), volumes: tuple[str, ...] = ()) -> str:
    """busybox + `entries` — (name, link target) for a str, (name, file bytes) for
    bytes — appended after busybox's own (so `lib3/foo` goes through a link `lib3`),
    without the busybox entries named in `drop`; imported as `ref`."""
    base = make_busybox_tar(tmp_path / f"{ref.replace('/', '_')}-base.tar",
                            tmp_path / ref.replace("/", "_"))
    out = tmp_path / f"{ref.replace('/', '_')}.tar"
    with tarfile.open(base) as src, tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as dst:
        for m in src:
            if m.name.lstrip("./").split("/")[0] in drop:
                continue
            dst.addfile(m, src.extractfile(m) if m.isreg() else None)
        for name, what in entries:
            ti = tarfile.TarInfo(name)
            if isinstance(what, str):
                ti.type, ti.linkname = tarfile.SYMTYPE, what
                dst.addfile(ti)
            else:
                ti.size, ti.mode = len(what), 0o644
                dst.addfile(ti, io.BytesIO(what))
    ImageStore(cli.roots).import_rootfs(out, ref=ref, config=ImageConfig(volumes=volumes))
    return ref


def up(cli: CLI, image: str, service_yaml: str, tail: str = "") -> None:
    (cli.cwd / "compose.yaml").write_text(
        "name: boundary\nservices:\n"
        f"  app:\n    image: {image}\n    pull_policy: never\n"
        "    command: [sleep, '1000']\n    stop_signal: SIGKILL\n"
        f"{service_yaml}{tail}")
    cli("up", "-d")


def sh(cli: CLI, script: str) -> str:
    return cli("exec", "-T", "app", "sh", "-c", script).stdout


def test_etc_linked_to_a_host_dir_gets_the_files_inside_the_container(
        cli: CLI, tmp_path: Path, host_dir: Path) -> None:
    """`/etc -> <host dir>`: /etc/hosts, resolv.conf and hostname are mounted at the
    host dir's path *inside* the container; the host's symlink resolv.conf stays."""
    before = snapshot(host_dir)
    image = craft_image(cli, tmp_path, "evil/etc-link", [("etc", str(host_dir))],
                        drop=("etc",))
    up(cli, image, "    hostname: boundary-app\n")
    assert snapshot(host_dir) == before
    assert (host_dir / "resolv.conf").is_symlink()
    out = sh(cli, "grep -c nameserver /etc/resolv.conf; grep -c boundary-app /etc/hosts; "
                  "readlink /etc; ls /etc")
    nameservers, hosts, link, *names = out.split()
    assert int(nameservers) >= 1 and int(hosts) >= 1
    assert link == str(host_dir)
    assert sorted(names) == ["hostname", "hosts", "resolv.conf"]  # nothing of the host's


def test_proc_dev_sys_linked_to_host_dirs_are_made_inside_the_container(
        cli: CLI, tmp_path: Path, host_dir: Path) -> None:
    """`/proc`, `/dev`, `/sys` linked to (missing) host directories, with `init: true`
    (catatonit bound at /dev/init): all are made and mounted at those paths inside the
    container, none on the host."""
    before = snapshot(host_dir)
    image = craft_image(cli, tmp_path, "evil/kernel-fs-links",
                        [(d, f"{host_dir}/{d}-here") for d in ("proc", "dev", "sys")],
                        drop=("proc", "dev", "sys"))
    up(cli, image, "    init: true\n")
    assert snapshot(host_dir) == before
    out = sh(cli, "cat /proc/1/comm; head -c 3 /dev/zero | wc -c; stat -f -c %T /sys; "
                  "stat -f -c %T /dev; readlink /proc")
    assert out.split() == ["init", "3", "sysfs", "tmpfs", f"{host_dir}/proc-here"]
    assert snapshot(host_dir) == before


def test_mount_targets_under_a_link_to_a_host_dir_stay_in_the_container(
        cli: CLI, tmp_path: Path, host_dir: Path) -> None:
    """Volume, bind, tmpfs, config (given as a file) and secret (bound, with a mode)
    targets under `/hostlink/…`, where `/hostlink -> <host dir>`."""
    before = snapshot(host_dir)
    image = craft_image(cli, tmp_path, "evil/hostlink", [("hostlink", str(host_dir))])
    (cli.cwd / "bindsrc").mkdir()
    (cli.cwd / "bindsrc" / "bound").write_text("from the bind\n")
    (cli.cwd / "app.conf").write_text("config\n")
    (cli.cwd / "secret.txt").write_text("secret\n")
    up(cli, image,
       "    volumes:\n"
       "      - data:/hostlink/vol\n"
       "      - ./bindsrc:/hostlink/bind\n"
       "      - {type: tmpfs, target: /hostlink/tmp}\n"
       "    configs:\n      - {source: cfg, target: /hostlink/conf/app.conf}\n"
       "    secrets:\n      - {source: sec, target: /hostlink/secret, mode: 0440}\n",
       "volumes:\n  data: {}\n"
       "configs:\n  cfg:\n    file: ./app.conf\n"
       "secrets:\n  sec:\n    file: ./secret.txt\n")
    assert snapshot(host_dir) == before
    out = sh(cli, "cat /hostlink/conf/app.conf /hostlink/secret /hostlink/bind/bound; "
                  "stat -f -c %T /hostlink/tmp; echo written > /hostlink/vol/f; "
                  "ls /hostlink")
    assert out.split("\n")[:4] == ["config", "secret", "from the bind", "tmpfs"]
    assert sorted(out.splitlines()[4:]) == ["bind", "conf", "secret", "tmp", "vol"]
    assert snapshot(host_dir) == before


def test_volume_at_a_link_to_a_host_dir_is_not_seeded_from_the_host(
        cli: CLI, tmp_path: Path, host_dir: Path) -> None:
    """A named volume at `/hostlink` and at `/other`: the host dir's secret must not be
    copied into the volume (and so become readable at /other)."""
    before = snapshot(host_dir)
    image = craft_image(cli, tmp_path, "evil/volume-link", [("hostlink", str(host_dir))])
    up(cli, image, "    volumes:\n      - data:/hostlink\n      - data:/other\n",
       "volumes:\n  data: {}\n")
    assert sh(cli, "ls -A /other") == ""
    assert sh(cli, "ls -A /hostlink") == ""
    assert snapshot(host_dir) == before
    volumes = cli.roots.state / "volumes"
    assert not [p for p in volumes.rglob("*") if p.name in ("secret", "keep")]


def test_image_volume_declared_through_a_link_is_seeded_from_the_image(
        cli: CLI, tmp_path: Path, host_dir: Path) -> None:
    """`Volumes: {"/appdata": {}}` with `/appdata -> <host dir>`: the anonymous volume
    gets what the image holds at that path, not the host dir's content."""
    before = snapshot(host_dir)
    inside = str(host_dir).lstrip("/")
    image = craft_image(cli, tmp_path, "evil/image-volume",
                        [("appdata", str(host_dir)),
                         (f"{inside}/from-image", b"image content\n")],
                        volumes=("/appdata",))
    up(cli, image, "")
    assert sh(cli, "ls -A /appdata; cat /appdata/from-image") == \
        "from-image\nimage content\n"
    assert snapshot(host_dir) == before
    seeded = [p.name for p in (cli.roots.state / "volumes").rglob("*") if p.is_file()]
    assert seeded == ["from-image"]


def test_absolute_link_inside_the_image_is_followed_as_the_container_sees_it(
        cli: CLI, tmp_path: Path) -> None:
    """`lib3 -> /usr/lib3` with a layer entry `lib3/foo` (unpacked through the link),
    then a bind at /lib3/bound and a named volume at /lib3/data, seeded from the
    image's /usr/lib3/data."""
    image = craft_image(cli, tmp_path, "legit/lib3", [
        ("usr/lib3/data/seed", b"seeded\n"),
        ("lib3", "/usr/lib3"),
        ("lib3/foo", b"foo\n"),
    ])
    (cli.cwd / "bindsrc").mkdir()
    (cli.cwd / "bindsrc" / "x").write_text("bound\n")
    up(cli, image, "    volumes:\n      - ./bindsrc:/lib3/bound\n      - data:/lib3/data\n",
       "volumes:\n  data: {}\n")
    out = sh(cli, "cat /usr/lib3/foo /usr/lib3/bound/x /usr/lib3/data/seed; readlink /lib3")
    assert out == "foo\nbound\nseeded\n/usr/lib3\n"
    volume_files = [p for p in (cli.roots.state / "volumes").rglob("seed")]
    assert [p.read_text() for p in volume_files] == ["seeded\n"]


# -- read-only all the way down -------------------------------------------------------

@pytest.fixture
def tree_with_submount(tmp_path: Path) -> Iterator[Path]:
    """A host directory with a tmpfs mounted in it (unmounted afterwards, whatever
    happens): a read-only bind of it must leave the tmpfs read-only too."""
    tree = tmp_path / "rotree"
    (tree / "sub").mkdir(parents=True)
    (tree / "top").write_text("top\n")
    sc.mount("stackd-test", str(tree / "sub"), "tmpfs", sc.MS_NOSUID | sc.MS_NODEV, "size=1m")
    try:
        (tree / "sub" / "in-sub").write_text("sub\n")
        yield tree
    finally:
        sc.umount2(str(tree / "sub"), sc.MNT_DETACH)


def mounts_below(mountinfo: str, top: str) -> dict[str, str]:
    """mount point → its per-mount options, for each mount at or below `top`."""
    out = {}
    for line in mountinfo.splitlines():
        fields = line.split()
        if fields[4] == top or fields[4].startswith(top + "/"):
            out[fields[4]] = fields[5]
    return out


def test_read_only_bind_is_read_only_below_the_top(cli: CLI, tree_with_submount: Path
                                                   ) -> None:
    before = snapshot(tree_with_submount)
    up(cli, "stackd-demo/busybox:latest",
       f"    volumes:\n      - {tree_with_submount}:/ro:ro\n")
    out = sh(cli, "echo x > /ro/top || echo top-refused; "
                  "echo x > /ro/sub/in-sub || echo sub-refused; "
                  "touch /ro/sub/new || echo new-refused")
    assert out.split() == ["top-refused", "sub-refused", "new-refused"]
    info = mounts_below(sh(cli, "cat /proc/self/mountinfo"), "/ro")
    assert sorted(info) == ["/ro", "/ro/sub"]
    assert all(opts.split(",")[0] == "ro" for opts in info.values()), info
    assert snapshot(tree_with_submount) == before


def test_host_root_bound_read_only_leaves_no_host_mount_writable(cli: CLI) -> None:
    """`/:/host:ro`: /host/proc and /host/sys/fs/cgroup are mounts of their own below the
    top; every one must be read-only. The write probe writes core_pattern's current
    value, so even a failing run changes nothing."""
    up(cli, "stackd-demo/busybox:latest", "    volumes:\n      - /:/host:ro\n")
    info = mounts_below(sh(cli, "cat /proc/self/mountinfo"), "/host")
    assert "/host/proc" in info and any(p.startswith("/host/sys/fs/cgroup") for p in info)
    writable = {p: o for p, o in info.items() if o.split(",")[0] != "ro"}
    assert writable == {}
    out = sh(cli, "cat /host/proc/sys/kernel/core_pattern > /tmp/cp; "
                  "cat /tmp/cp > /host/proc/sys/kernel/core_pattern && echo WROTE || "
                  "echo refused")
    assert out.strip() == "refused"
