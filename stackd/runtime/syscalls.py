"""The handful of Linux syscalls Python 3.11 does not wrap, through libc: stackd's one
set of libc bindings (the security code and netbridge's namespaces use these too).

Each wrapper raises OSError with errno set, like the os module does, so callers
translate failures the same way whether they came from os.* or from here.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import platform
import socket
import struct

TYPE_CHECKING = False  # typing's, without importing typing: see specview
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

# The C library our interpreter runs on, by soname: ctypes.util.find_library would run
# ldconfig and import subprocess in every process of ours that does a syscall (#20).
_libc = ctypes.CDLL("libc.so.6", use_errno=True)

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

MNT_DETACH = 2

# openat2(2): resolve a path as if the directory fd were the root (absolute symlinks
# and ".." stay inside), without following /proc's magic links.
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10
# mount_setattr(2)
MOUNT_ATTR_RDONLY = 0x1
AT_EMPTY_PATH = 0x1000
AT_SYMLINK_NOFOLLOW = 0x100
AT_RECURSIVE = 0x8000
PROC_SUPER_MAGIC = 0x9FA0

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36

NAMESPACE_FLAGS = {
    "pid": CLONE_NEWPID,
    "net": CLONE_NEWNET,
    "ipc": CLONE_NEWIPC,
    "uts": CLONE_NEWUTS,
    "mnt": CLONE_NEWNS,
    "cgroup": CLONE_NEWCGROUP,
}


def _check(ret: int, what: str, path: str | None = None) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)
    return ret


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    _check(_libc.mount(
        source.encode() if source is not None else None,
        target.encode(),
        fstype.encode() if fstype is not None else None,
        ctypes.c_ulong(flags),
        data.encode() if data is not None else None,
    ), f"mount {fstype or ''} on {target}", target)


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(target.encode(), ctypes.c_int(flags)), f"umount {target}", target)


# glibc has no pivot_root wrapper; the syscall number differs per architecture.
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203}


def pivot_root(new_root: str, put_old: str) -> None:
    nr = _SYS_PIVOT_ROOT[platform.machine()]
    _check(_libc.syscall(ctypes.c_long(nr), new_root.encode(), put_old.encode()),
           "pivot_root", new_root)


# bpf(2) has no glibc wrapper either; the attribute union is passed as raw bytes.
_SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361}


def bpf(cmd: int, attr: bytearray) -> int:
    """One bpf(2) command; `attr` is `union bpf_attr` as bytes (read back in place)."""
    buf = (ctypes.c_char * len(attr)).from_buffer(attr)
    return _check(_libc.syscall(ctypes.c_long(_SYS_BPF[platform.machine()]),
                                ctypes.c_int(cmd), buf, ctypes.c_uint(len(attr))),
                  f"bpf command {cmd}")


def loopback_up() -> None:
    """Set `lo` of our network namespace up (SIOCSIFFLAGS, as `ip link set lo up`): a new
    namespace's lo starts down, and programs expect 127.0.0.1 to answer."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = fcntl.ioctl(s, siocgifflags, struct.pack("16sH22x", b"lo", 0))
        flags = struct.unpack("16sH22x", ifreq)[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH22x", b"lo", flags | iff_up))


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))), "sethostname")


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(_libc.setdomainname(raw, ctypes.c_size_t(len(raw))), "setdomainname")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(_libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                              ctypes.c_ulong(arg4), ctypes.c_ulong(arg5)), f"prctl({option})")


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def capget() -> tuple[int, int, int]:
    """(effective, permitted, inheritable) of this process as 64-bit masks."""
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc.capget(ctypes.byref(hdr), data), "capget")
    eff, prm, inh = (getattr(data[0], f) | (getattr(data[1], f) << 32)
                     for f in ("effective", "permitted", "inheritable"))
    return eff, prm, inh


def capset(effective: int, permitted: int, inheritable: int) -> None:
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in (0, 1):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.capset(ctypes.byref(hdr), data), "capset")


def set_process_name(name: str) -> None:
    """The comm name shown by ps/top (15 bytes)."""
    buf = ctypes.create_string_buffer(name.encode()[:15])
    _libc.prctl(ctypes.c_int(PR_SET_NAME), buf, 0, 0, 0)


# Both came after the table was unified across architectures: one number everywhere.
_SYS_OPEN_TREE = 428  # the new mount API's numbers are the same on every architecture
_SYS_MOVE_MOUNT = 429
_SYS_FSOPEN = 430
_SYS_FSCONFIG = 431
_SYS_FSMOUNT = 432
_SYS_OPENAT2 = 437
_SYS_MOUNT_SETATTR = 442
_FSCONFIG_SET_STRING = 1
_FSCONFIG_CMD_CREATE = 6
OPEN_TREE_CLONE = 1
_MOVE_MOUNT_EMPTY_PATHS = 0x04 | 0x40  # MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """A new descriptor; OSError(ENOSYS) on kernels before 5.6."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    return _check(_libc.syscall(ctypes.c_long(_SYS_OPENAT2), ctypes.c_int(dirfd),
                                os.fsencode(path), ctypes.byref(how),
                                ctypes.c_size_t(ctypes.sizeof(how))), "openat2", path)


def open_tree(path: str, flags: int) -> int:
    """A descriptor of the mount at `path` (with OPEN_TREE_CLONE: a detached copy,
    which `move_mount` attaches in whatever mount namespace the caller is in by
    then). OSError(ENOSYS) on kernels before 5.2."""
    return _check(_libc.syscall(ctypes.c_long(_SYS_OPEN_TREE), ctypes.c_int(-100),
                                os.fsencode(path), ctypes.c_uint(flags | os.O_CLOEXEC)),
                  "open_tree", path)


def move_mount(tree: int, target: int) -> None:
    """Attach the detached mount `tree` onto the file `target` (both descriptors)."""
    _check(_libc.syscall(ctypes.c_long(_SYS_MOVE_MOUNT), ctypes.c_int(tree), b"",
                         ctypes.c_int(target), b"", ctypes.c_uint(_MOVE_MOUNT_EMPTY_PATHS)),
           "move_mount")


def mount_setattr(dirfd: int, path: str, flags: int, attr_set: int, attr_clr: int = 0) -> None:
    """OSError(ENOSYS) on kernels before 5.12."""
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    _check(_libc.syscall(ctypes.c_long(_SYS_MOUNT_SETATTR), ctypes.c_int(dirfd),
                         os.fsencode(path), ctypes.c_uint(flags), ctypes.byref(attr),
                         ctypes.c_size_t(ctypes.sizeof(attr))), "mount_setattr", path)


def detached_mount(fstype: str, options: Sequence[tuple[str, str]], attr: int = 0) -> int:
    """A new file system mounted nowhere (fsopen, fsconfig, fsmount): a descriptor of
    its root, usable as any directory's, that no mount namespace holds — it is gone
    when the last descriptor is closed, whatever becomes of the process. Options are
    set one by one, in order; each value is at most 256 bytes (the kernel's bound)."""
    fs = _check(_libc.syscall(ctypes.c_long(_SYS_FSOPEN), fstype.encode(),
                              ctypes.c_uint(1)), "fsopen", fstype)  # FSOPEN_CLOEXEC
    try:
        for key, value in options:
            _check(_libc.syscall(ctypes.c_long(_SYS_FSCONFIG), ctypes.c_int(fs),
                                 ctypes.c_uint(_FSCONFIG_SET_STRING), key.encode(),
                                 value.encode(), ctypes.c_int(0)), "fsconfig", key)
        _check(_libc.syscall(ctypes.c_long(_SYS_FSCONFIG), ctypes.c_int(fs),
                             ctypes.c_uint(_FSCONFIG_CMD_CREATE), None, None, ctypes.c_int(0)),
               "fsconfig", fstype)
        return _check(_libc.syscall(ctypes.c_long(_SYS_FSMOUNT), ctypes.c_int(fs),
                                    ctypes.c_uint(1), ctypes.c_uint(attr)),  # FSMOUNT_CLOEXEC
                      "fsmount", fstype)
    finally:
        os.close(fs)


def fstatfs_type(fd: int) -> int:
    """f_type of the file system holding fd (the first field of struct statfs)."""
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit
    _check(_libc.fstatfs(ctypes.c_int(fd), buf), "fstatfs")
    return ctypes.c_long.from_buffer(buf).value


def mmsg_functions() -> tuple[Any, Any]:
    """libc's recvmmsg(fd, vec, n, flags, timeout) and sendmmsg(fd, vec, n, flags), raw:
    they return -1 with errno set, and callers on a hot path read the errno themselves
    (netbridge/udpbatch.py); a wrapper raising here would cost more than the call."""
    recv, send = _libc.recvmmsg, _libc.sendmmsg
    recv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
    send.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    recv.restype = send.restype = ctypes.c_int
    return recv, send


_SYNC_FILE_RANGE_WRITE = 2


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to begin writing a file's range to disk, without waiting for it
    (sync_file_range(2) with SYNC_FILE_RANGE_WRITE): a later fsync then waits only for
    what was written since. Durability still comes from that fsync alone."""
    call = _libc.sync_file_range
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    _check(call(fd, offset, length, _SYNC_FILE_RANGE_WRITE), "sync_file_range")
