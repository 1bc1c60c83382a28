"""Building the container's root filesystem, run inside the container's new mount
namespace by its first process before it executes anything.

Order: make every mount private (nothing propagates back to the host), mount the
overlay, the user's mounts and files, /proc, /dev, /sys under it, pivot_root into it
and detach the old root; then (in the new root) mask and read-only-ify the paths
Docker does, and finally make the root read-only if asked.

Until pivot_root every path of the container is one the image may have bent with
symlinks: each is resolved inside the root (inroot) and mounted onto, created in or
copied from through the descriptor that came back. Read-only mounts are read-only all
the way down (readonly_mount).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from stackd.errors import HostError, SpecError
from stackd.runtime import inroot, overlayfs, readonly_mount, volume_seed
from stackd.runtime import syscalls as sc
from stackd.runtime.layout import ContainerPaths

TYPE_CHECKING = False  # typing's, without importing typing: see specview
if TYPE_CHECKING:
    from collections.abc import Callable

    from stackd.runtime.containerspec import ContainerSpec, Device, Mount

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


def setup_rootfs(spec: ContainerSpec, paths: ContainerPaths, *, shm_from: int | None = None,
                 alive: Callable[[], None] = lambda: None) -> None:
    """`shm_from`: the mount namespace of the container whose IPC namespace this one
    joins: its /dev/shm becomes ours. Else /dev/shm is a tmpfs of our own."""
    root = paths.rootfs
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
    shm = None if shm_from is None else _clone_shm(shm_from)
    overlayfs.mount(str(root), [str(layer) for layer in spec.layers], str(paths.upper),
                    str(paths.work))
    # Opened after the mount: the descriptor is the overlay's root, and every path of
    # the container is resolved from it (inroot), never from the host's "/".
    root_fd = inroot.open_root(root)
    try:
        for m in sorted(spec.mounts, key=lambda m: len(Path(m.target).parts)):
            _user_mount(root_fd, m, alive)
        for index, target in enumerate(sorted(spec.files)):
            _file_mount(root_fd, paths, index, target)
        _mount_proc(root_fd)
        _mount_dev(root_fd, spec, shm)
        _mount_sys(root_fd, spec.security.privileged)
        if spec.process.init:
            _place_init(root_fd)
    finally:
        os.close(root_fd)


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


def _target_error(target: str, e: OSError) -> SpecError:
    why = {errno.ELOOP: "too many symlinks (or a /proc magic link) on the way",
           errno.ENOTDIR: "a part of it is not a directory in the image",
           errno.EEXIST: "it exists in the image as something else",
           errno.EISDIR: "it is a directory in the image"}.get(e.errno or 0, e.strerror)
    return SpecError(f"cannot mount at {target} in the container: {why}",
                     hint="mount somewhere else, or fix the image's paths")


def _dir_target(root_fd: int, target: str) -> inroot.Found:
    """The directory at `target` inside the root, made if missing."""
    try:
        found = inroot.mkdir_all(root_fd, target)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR, errno.EEXIST):
            raise _target_error(target, e) from e
        raise
    if not found.name:
        found.close()
        raise SpecError(f"cannot mount at {target}: it is the container's root",
                        hint="mount at a directory below /")
    return found


def _file_target(root_fd: int, target: str, *, replace_link: bool) -> inroot.Found:
    """The regular file at `target` inside the root, made if missing. With
    `replace_link`, a symlink there is removed first (e.g. /etc/resolv.conf →
    ../run/…: the given file wins) instead of followed."""
    try:
        found = inroot.resolve(root_fd, target, follow_last=not replace_link,
                               mkdir_mode=0o755)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _target_error(target, e) from e
        raise
    try:
        if not found.name:
            raise SpecError(f"cannot mount a file at {target}: it is the container's root",
                            hint="give a file name")
        if found.fd is not None:
            mode = os.fstat(found.fd).st_mode
            if stat.S_ISLNK(mode):
                os.close(found.fd)
                found.fd = None
                os.unlink(found.name, dir_fd=found.parent)
            elif stat.S_ISDIR(mode):
                raise _target_error(target, IsADirectoryError(errno.EISDIR, "is a directory"))
        if found.fd is None:
            os.close(os.open(found.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o644, dir_fd=found.parent))
            found.fd = os.open(found.name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC,
                               dir_fd=found.parent)
            found.created = True
    except BaseException:
        found.close()
        raise
    return found


def _bind(source: str, found: inroot.Found, *, readonly: bool, recursive: bool = True) -> None:
    assert found.fd is not None
    sc.mount(source, inroot.proc_path(found.fd), None,
             sc.MS_BIND | (sc.MS_REC if recursive else 0))
    if readonly:
        mounted = found.reopen()
        try:
            readonly_mount.make_readonly(mounted)
        finally:
            os.close(mounted)


def _user_mount(root_fd: int, m: Mount, alive: Callable[[], None]) -> None:
    if m.type == "tmpfs":
        with _dir_target(root_fd, m.target) as found:
            assert found.fd is not None
            opts = []
            if m.size is not None:
                opts.append(f"size={m.size}")
            if m.mode is not None:
                opts.append(f"mode={m.mode:o}")
            opts += [f"{k}={v}" for k, v in (("uid", m.uid), ("gid", m.gid)) if v is not None]
            flags = (sc.MS_NOSUID | sc.MS_NODEV | (sc.MS_RDONLY if m.readonly else 0)
                     | (sc.MS_NOEXEC if m.noexec else 0))
            sc.mount("tmpfs", inroot.proc_path(found.fd), "tmpfs", flags,
                     ",".join(opts) or None)
        return
    if m.subpath:
        _subpath_mount(root_fd, m)
        return
    source = Path(m.source)
    if not source.exists():
        raise SpecError(f"mount source {m.source} does not exist (for {m.target})",
                        hint="create it first, or fix the path")
    if not source.is_dir():
        with _file_target(root_fd, m.target, replace_link=False) as found:
            _bind(m.source, found, readonly=m.readonly)
        return
    with _dir_target(root_fd, m.target) as found:
        assert found.fd is not None
        if m.type == "volume" and m.seed and not found.created:
            volume_seed.seed_once(found.fd, source, plain=m.seed_plain, alive=alive)
        _bind(m.source, found, readonly=m.readonly)


def _subpath_mount(root_fd: int, m: Mount) -> None:
    """A path inside a volume, resolved inside it: whatever a container wrote there
    before (a link to `/`, `..`) is read as the volume's own, never the host's."""
    volume = inroot.open_root(m.source)
    try:
        found = inroot.resolve(volume, m.subpath)
    except OSError as e:
        found = None
        why = e.strerror
    else:
        why = "no such file or directory"
    finally:
        os.close(volume)
    if found is None or found.fd is None:
        if found is not None:
            found.close()
        raise SpecError(f"cannot mount subpath {m.subpath!r} of the volume for {m.target}: "
                        f"{why}", hint="make it in the volume first, or fix volume.subpath")
    with found:
        assert found.fd is not None
        is_dir = stat.S_ISDIR(os.fstat(found.fd).st_mode)
        target = (_dir_target(root_fd, m.target) if is_dir
                  else _file_target(root_fd, m.target, replace_link=False))
        with target:
            _bind(inroot.proc_path(found.fd), target, readonly=m.readonly)


def _file_mount(root_fd: int, paths: ContainerPaths, index: int, target: str) -> None:
    source = paths.files / str(index)
    with _file_target(root_fd, target, replace_link=True) as found:
        _bind(str(source), found, recursive=False,
              readonly=os.path.normpath(target) not in WRITABLE_FILES)


def _mount_proc(root_fd: int) -> None:
    with _dir_target(root_fd, "/proc") as found:
        assert found.fd is not None
        sc.mount("proc", inroot.proc_path(found.fd), "proc",
                 sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)


def _mount_sys(root_fd: int, privileged: bool) -> None:
    with _dir_target(root_fd, "/sys") as found:
        assert found.fd is not None
        flags = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | (0 if privileged else sc.MS_RDONLY)
        try:
            sc.mount("sysfs", inroot.proc_path(found.fd), "sysfs", flags)
        except OSError:
            # Sharing the host's network namespace forbids a fresh sysfs; bind the
            # host's, whose submounts (cgroups, …) must be read-only too.
            _bind("/sys", found, readonly=not privileged)


def _mount_dev(root_fd: int, spec: ContainerSpec, shm: int | None) -> None:
    with _dir_target(root_fd, "/dev") as found:
        assert found.fd is not None
        sc.mount("tmpfs", inroot.proc_path(found.fd), "tmpfs",
                 sc.MS_NOSUID | sc.MS_STRICTATIME, "mode=755,size=65536k")
        dev = found.reopen()  # the new tmpfs, ours alone: names in it are safe
    try:
        _fill_dev(dev, spec, shm)
    finally:
        os.close(dev)


def _fill_dev(dev: int, spec: ContainerSpec, shm: int | None) -> None:
    if spec.security.privileged:
        _copy_host_devices("/dev", dev)
    for device in spec.devices:
        _make_device(dev, device)
    for name, (major, minor) in DEFAULT_DEVICES.items():
        if not _lexists(name, dev):
            os.mknod(name, 0o666 | stat.S_IFCHR, os.makedev(major, minor), dir_fd=dev)
            os.chmod(name, 0o666, dir_fd=dev)
    for name, target in DEV_LINKS.items():
        if not _lexists(name, dev):
            os.symlink(target, name, dir_fd=dev)
    for name, source, fstype, flags, data in (
            ("pts", "devpts", "devpts", sc.MS_NOSUID | sc.MS_NOEXEC,
             "newinstance,ptmxmode=0666,mode=0620,gid=5"),
            ("shm", "shm", "tmpfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC,
             f"mode=1777,size={spec.resources.shm_size}"),
            ("mqueue", "mqueue", "mqueue", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC, None)):
        with _dir_target(dev, name) as found:
            assert found.fd is not None
            if name == "shm" and shm is not None:
                sc.move_mount(shm, found.fd)
                os.close(shm)
            else:
                sc.mount(source, inroot.proc_path(found.fd), fstype, flags, data)


def _clone_shm(other: int) -> int:
    """A detached copy of the /dev/shm mount of the mount namespace `other`. A mount of
    another namespace cannot be bound into ours, so it is cloned from inside that one:
    there "/" is that container's root. Its /dev is ours, but a privileged container
    can swap its /dev/shm for a link (to /proc/self/root, with `pid: host`: whoever
    follows it gets its root), so a link there is not followed and only a directory
    is taken."""
    own = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        sc.setns(other, sc.CLONE_NEWNS)
        try:
            tree = sc.open_tree("/dev/shm", sc.OPEN_TREE_CLONE | sc.AT_SYMLINK_NOFOLLOW)
        finally:
            sc.setns(own, sc.CLONE_NEWNS)
    finally:
        os.close(own)
        os.close(other)
    if not stat.S_ISDIR(os.fstat(tree).st_mode):
        os.close(tree)
        raise SpecError("the /dev/shm of the container whose IPC namespace this one "
                        "joins is not a directory",
                        hint="give that container its /dev/shm back (restart it)")
    return tree


def _make_device(dev: int, device: Device) -> None:
    """The node at `device.target` (under /dev) in the fresh /dev tmpfs `dev`: only we
    have written there, and every step is relative to a descriptor without following
    links, so a target cannot lead out of it."""
    parts = device.target.removeprefix("/dev/").split("/")
    if device.type is None or device.major is None or device.minor is None or any(
            p in ("", ".", "..") for p in parts):
        raise HostError(f"device {device.source}: cannot make {device.target}",
                        hint="device targets are paths under /dev")
    fd = os.dup(dev)
    try:
        for part in parts[:-1]:
            if not _lexists(part, fd):
                os.mkdir(part, 0o755, dir_fd=fd)
            sub = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                          dir_fd=fd)
            os.close(fd)
            fd = sub
        name = parts[-1]
        if _lexists(name, fd):
            os.unlink(name, dir_fd=fd)  # e.g. /dev/null given again: the user's wins
        kind = stat.S_IFCHR if device.type == "c" else stat.S_IFBLK
        mode = 0o666 if device.mode is None else device.mode
        os.mknod(name, kind | mode, os.makedev(device.major, device.minor), dir_fd=fd)
        os.chown(name, device.uid, device.gid, dir_fd=fd, follow_symlinks=False)
        os.chmod(name, mode, dir_fd=fd)
    finally:
        os.close(fd)


def _lexists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _copy_host_devices(src: str, dest: int) -> None:
    """`privileged`: the host's device nodes, as Docker creates them."""
    for entry in os.scandir(src):
        if entry.name in ("pts", "shm", "mqueue", "fd") or entry.is_symlink():
            continue
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            if not _lexists(entry.name, dest):
                os.mkdir(entry.name, 0o755, dir_fd=dest)
            sub = os.open(entry.name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                          dir_fd=dest)
            try:
                _copy_host_devices(entry.path, sub)
            finally:
                os.close(sub)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            os.mknod(entry.name, st.st_mode, st.st_rdev, dir_fd=dest)
            os.chown(entry.name, st.st_uid, st.st_gid, dir_fd=dest, follow_symlinks=False)
            os.chmod(entry.name, stat.S_IMODE(st.st_mode), dir_fd=dest)


def _place_init(root_fd: int) -> None:
    if not os.path.exists(INIT_BINARY):
        raise HostError(f"`init: true` needs {INIT_BINARY}",
                        hint="install the catatonit package")
    with _file_target(root_fd, INIT_PATH, replace_link=True) as found:
        _bind(INIT_BINARY, found, readonly=True, recursive=False)


def _mask(path: str) -> None:
    if not os.path.lexists(path):
        return
    if os.path.isdir(path):
        sc.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY, None)
    else:
        sc.mount("/dev/null", path, None, sc.MS_BIND)


def _readonly(path: str) -> None:
    """In the new root (pivot_root done): plain paths resolve inside it."""
    if not os.path.exists(path):
        return
    # The bind keeps procfs's nosuid, nodev, noexec; read-only goes on every submount.
    sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC)
    mounted = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        readonly_mount.make_readonly(mounted)
    finally:
        os.close(mounted)
