"""Building the container's root filesystem, run inside the container's new mount
namespace by its first process before it executes anything.

Order: make every mount private (nothing propagates back to the host), mount the
overlay, the user's mounts and files, /proc, /dev, /sys under it, pivot_root into it
and detach the old root; then (in the new root) mask and read-only-ify the paths
Docker does, and finally make the root read-only if asked.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from stackd.errors import HostError, SpecError
from stackd.runtime import syscalls as sc
from stackd.runtime.containerspec import ContainerSpec, Mount
from stackd.runtime.layout import ContainerPaths

# Docker's defaults (moby oci/defaults.go), read as empty or denied inside.
MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# name → (major, minor); all 0666 character devices, as runc creates them.
DEFAULT_DEVICES = {
    "null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9),
    "tty": (5, 0),
}
DEV_LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
             "stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx", "core": "/proc/kcore"}
# Writable by the process even when given as files: programs rewrite these three.
WRITABLE_FILES = ("/etc/hosts", "/etc/resolv.conf", "/etc/hostname")
INIT_BINARY = "/usr/bin/catatonit"
INIT_PATH = "/dev/init"


def inside(root: Path, path: str) -> Path:
    """`path` of the container, under `root` on the host, without following symlinks out."""
    rel = os.path.normpath("/" + path).lstrip("/")
    return root / rel


def overlay_options(spec: ContainerSpec, paths: ContainerPaths) -> str:
    lower = ":".join(spec.layers)
    return f"lowerdir={lower},upperdir={paths.upper},workdir={paths.work}"


def setup_rootfs(spec: ContainerSpec, paths: ContainerPaths) -> None:
    root = paths.rootfs
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
    sc.mount("overlay", str(root), "overlay", 0, overlay_options(spec, paths))
    for m in sorted(spec.mounts, key=lambda m: len(Path(m.target).parts)):
        _user_mount(root, m)
    for index, target in enumerate(sorted(spec.files)):
        _file_mount(root, paths, index, target)
    _mount_proc(root)
    _mount_dev(root, spec)
    _mount_sys(root, spec.security.privileged)
    if spec.process.init:
        _place_init(root)


def pivot(root: Path) -> None:
    os.chdir(root)
    # pivot_root(".", ".") stacks the old root on top of the new one; detaching it
    # leaves only the container's tree, without needing a put_old directory.
    sc.pivot_root(".", ".")
    sc.umount2(".", sc.MNT_DETACH)
    os.chdir("/")


def harden(spec: ContainerSpec) -> None:
    """In the new root: masked and read-only paths, then the read-only root."""
    if not spec.security.privileged:
        for p in MASKED_PATHS:
            _mask(p)
        for p in READONLY_PATHS:
            _readonly(p)
    if spec.readonly_rootfs:
        sc.mount(None, "/", None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY)


def _mkdirs(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)


def _touch(path: Path) -> None:
    _mkdirs(path.parent)
    if not path.exists():
        path.touch()


def _user_mount(root: Path, m: Mount) -> None:
    target = inside(root, m.target)
    if m.type == "tmpfs":
        _mkdirs(target)
        opts = []
        if m.size is not None:
            opts.append(f"size={m.size}")
        if m.mode is not None:
            opts.append(f"mode={m.mode:o}")
        flags = sc.MS_NOSUID | sc.MS_NODEV | (sc.MS_RDONLY if m.readonly else 0)
        sc.mount("tmpfs", str(target), "tmpfs", flags, ",".join(opts) or None)
        return
    source = Path(m.source)
    if not source.exists():
        raise SpecError(f"mount source {m.source} does not exist (for {m.target})",
                        hint="create it first, or fix the path")
    if m.type == "volume" and m.seed and target.is_dir() and not any(source.iterdir()):
        _seed_volume(target, source)
    if source.is_dir():
        _mkdirs(target)
    else:
        _touch(target)
    sc.mount(str(source), str(target), None, sc.MS_BIND | sc.MS_REC)
    if m.readonly:
        sc.mount(None, str(target), None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY)


def _seed_volume(src: Path, dest: Path) -> None:
    """Copy the image's content at the mount point into an empty named volume, as
    Docker does on first use, keeping owners and modes."""
    for entry in src.iterdir():
        target = dest / entry.name
        if entry.is_symlink():
            os.symlink(os.readlink(entry), target)
        elif entry.is_dir():
            shutil.copytree(entry, target, symlinks=True)
        else:
            shutil.copy2(entry, target)
    for dirpath, dirnames, filenames in os.walk(src):
        for name in ["", *dirnames, *filenames]:
            s = os.path.join(dirpath, name) if name else dirpath
            st = os.lstat(s)
            d = os.path.join(dest, os.path.relpath(s, src))
            os.lchown(d, st.st_uid, st.st_gid)
            if not stat.S_ISLNK(st.st_mode):
                os.chmod(d, stat.S_IMODE(st.st_mode))


def _file_mount(root: Path, paths: ContainerPaths, index: int, target: str) -> None:
    source = paths.files / str(index)
    dest = inside(root, target)
    if dest.is_symlink():
        dest.unlink()  # e.g. /etc/resolv.conf → ../run/…: the given file wins
    _touch(dest)
    sc.mount(str(source), str(dest), None, sc.MS_BIND)
    if os.path.normpath(target) not in WRITABLE_FILES:
        sc.mount(None, str(dest), None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY)


def _mount_proc(root: Path) -> None:
    target = root / "proc"
    _mkdirs(target)
    sc.mount("proc", str(target), "proc", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)


def _mount_sys(root: Path, privileged: bool) -> None:
    target = root / "sys"
    _mkdirs(target)
    flags = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | (0 if privileged else sc.MS_RDONLY)
    try:
        sc.mount("sysfs", str(target), "sysfs", flags)
    except OSError:
        # Sharing the host's network namespace forbids a fresh sysfs; bind the host's.
        sc.mount("/sys", str(target), None, sc.MS_BIND | sc.MS_REC)
        if not privileged:
            sc.mount(None, str(target), None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY)


def _mount_dev(root: Path, spec: ContainerSpec) -> None:
    dev = root / "dev"
    _mkdirs(dev)
    sc.mount("tmpfs", str(dev), "tmpfs", sc.MS_NOSUID | sc.MS_STRICTATIME,
             "mode=755,size=65536k")
    if spec.security.privileged:
        _copy_host_devices(Path("/dev"), dev)
    for name, (major, minor) in DEFAULT_DEVICES.items():
        node = dev / name
        if not node.exists():
            os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
            os.chmod(node, 0o666)
    for name, target in DEV_LINKS.items():
        link = dev / name
        if not link.exists() and not link.is_symlink():
            os.symlink(target, link)
    pts = dev / "pts"
    _mkdirs(pts)
    sc.mount("devpts", str(pts), "devpts", sc.MS_NOSUID | sc.MS_NOEXEC,
             "newinstance,ptmxmode=0666,mode=0620,gid=5")
    shm = dev / "shm"
    _mkdirs(shm)
    sc.mount("shm", str(shm), "tmpfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC,
             f"mode=1777,size={spec.resources.shm_size}")
    mqueue = dev / "mqueue"
    _mkdirs(mqueue)
    sc.mount("mqueue", str(mqueue), "mqueue", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)


def _copy_host_devices(src: Path, dest: Path) -> None:
    """`privileged`: the host's device nodes, as Docker creates them."""
    for entry in os.scandir(src):
        if entry.name in ("pts", "shm", "mqueue", "fd") or entry.is_symlink():
            continue
        st = entry.stat(follow_symlinks=False)
        target = dest / entry.name
        if stat.S_ISDIR(st.st_mode):
            target.mkdir(exist_ok=True)
            _copy_host_devices(Path(entry.path), target)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            os.mknod(target, st.st_mode, st.st_rdev)
            os.chown(target, st.st_uid, st.st_gid)
            os.chmod(target, stat.S_IMODE(st.st_mode))


def _place_init(root: Path) -> None:
    if not os.path.exists(INIT_BINARY):
        raise HostError(f"`init: true` needs {INIT_BINARY}",
                        hint="install the catatonit package")
    target = inside(root, INIT_PATH)
    _touch(target)
    sc.mount(INIT_BINARY, str(target), None, sc.MS_BIND)
    sc.mount(None, str(target), None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY)


def _mask(path: str) -> None:
    if not os.path.lexists(path):
        return
    if os.path.isdir(path):
        sc.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY, None)
    else:
        sc.mount("/dev/null", path, None, sc.MS_BIND)


def _readonly(path: str) -> None:
    if not os.path.exists(path):
        return
    sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC)
    sc.mount(None, path, None,
             sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
