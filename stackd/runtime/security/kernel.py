"""The capability, no_new_privs and seccomp knobs the container's child process turns.

Everything here is cheap and safe to call in a forked child of a single-threaded
process: no imports, no allocation beyond small ctypes buffers, no threads. The libc
bindings themselves are `runtime/syscalls.py`'s; the names are re-exported here for
the security code that calls them as `kernel.*`.
"""

from __future__ import annotations

import ctypes

from stackd.runtime.syscalls import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    capget,
    capset,
    prctl,
    setns,
)

PR_SET_SECCOMP = 22
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_KEEPCAPS = 8
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_MODE_FILTER = 2


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def load_seccomp(bpf: bytes) -> None:
    """Install a classic-BPF seccomp filter (an array of 8-byte sock_filter)."""
    buf = ctypes.create_string_buffer(bpf, len(bpf))
    prog = _SockFprog(len(bpf) // 8, ctypes.cast(buf, ctypes.c_void_p))
    try:
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog))
    except OSError as exc:
        raise OSError(exc.errno, f"loading the seccomp filter: {exc.strerror}") from None


__all__ = [
    "CLONE_NEWCGROUP", "CLONE_NEWIPC", "CLONE_NEWNET", "CLONE_NEWNS", "CLONE_NEWPID",
    "CLONE_NEWUSER", "CLONE_NEWUTS", "PR_CAPBSET_DROP", "PR_CAPBSET_READ",
    "PR_CAP_AMBIENT", "PR_CAP_AMBIENT_CLEAR_ALL", "PR_CAP_AMBIENT_RAISE",
    "PR_GET_NO_NEW_PRIVS", "PR_SET_KEEPCAPS", "PR_SET_NO_NEW_PRIVS", "PR_SET_SECCOMP",
    "SECCOMP_MODE_FILTER", "capget", "capset", "load_seccomp", "prctl", "setns",
]
