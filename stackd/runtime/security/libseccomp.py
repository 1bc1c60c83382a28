"""A small ctypes binding to libseccomp: compile a filter to classic BPF bytes.

Used only in the parent, before fork: the child receives finished BPF and loads it
with one prctl, so it does no heavy work and needs no library. libseccomp (Debian's
libseccomp2) does what it is good at — syscall name tables for every architecture,
multi-arch dispatch, argument comparisons — and we never hand-write BPF.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Sequence
from dataclasses import dataclass

from stackd.errors import UnavailableError

# scmp_compare
CMP_OPS: dict[str, int] = {
    "SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7,
}
# Filter actions (<seccomp.h>); ERRNO and TRACE carry their data in the low 16 bits.
ACT_KILL_PROCESS = 0x80000000
ACT_KILL_THREAD = 0x00000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000
ACT_TRACE = 0x7FF00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000

NR_SCMP_ERROR = -1
FLTATR_CTL_NNP = 3  # scmp_filter_attr: let libseccomp set no_new_privs on load — off


class ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


@dataclass(frozen=True, slots=True)
class ArgCondition:
    index: int
    op: str
    value: int
    value_two: int = 0


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """One libseccomp rule: a syscall name, an action, and conditions ANDed together."""

    syscall: str
    action: int
    conditions: tuple[ArgCondition, ...] = ()


_lib: ctypes.CDLL | None = None


def _open(soname: str) -> ctypes.CDLL:
    try:
        return ctypes.CDLL(soname, use_errno=True)
    except OSError:
        from ctypes.util import find_library

        name = find_library("seccomp")
        if name is None:
            raise
        return ctypes.CDLL(name, use_errno=True)


def _load() -> ctypes.CDLL:
    global _lib
    if _lib is not None:
        return _lib
    # The soname first: find_library runs ldconfig, and ctypes.util imports subprocess
    # (memory the runtime monitor keeps for as long as it runs, issue #20).
    try:
        lib = _open("libseccomp.so.2")
    except OSError as err:
        raise UnavailableError(
            f"libseccomp is not installed ({err})",
            hint="install Debian's libseccomp2 (scripts/setup does), or run with "
            "seccomp=unconfined") from err
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_arch_remove.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_arch_native.restype = ctypes.c_uint32
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    lib.seccomp_syscall_resolve_num_arch.restype = ctypes.c_void_p
    lib.seccomp_syscall_resolve_num_arch.argtypes = [ctypes.c_uint32, ctypes.c_int]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.POINTER(ArgCmp)]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    _lib = lib
    return lib


def arch_token(name: str) -> int:
    """libseccomp's token for an arch name ("x86_64", "x86", "x32", "aarch64"…); 0 if unknown."""
    return int(_load().seccomp_arch_resolve_name(name.encode()))


def native_arch() -> int:
    return int(_load().seccomp_arch_native())


def syscall_number(name: str, arch: int) -> int | None:
    nr = _load().seccomp_syscall_resolve_name_arch(arch, name.encode())
    return None if nr == NR_SCMP_ERROR else int(nr)


def syscall_names(arch: int, *, upto: int = 1024) -> list[str]:
    """Every syscall name libseccomp knows for an arch (x32's numbers carry bit 30)."""
    lib = _load()
    libc = ctypes.CDLL(None)
    libc.free.argtypes = [ctypes.c_void_p]
    base = 0x40000000 if arch == arch_token("x32") else 0
    names = []
    for nr in range(base, base + upto):
        ptr = lib.seccomp_syscall_resolve_num_arch(arch, nr)
        if ptr:
            names.append(ctypes.string_at(ptr).decode())
            libc.free(ptr)
    return names


def trim_heap() -> None:
    """Return the C heap's free memory to the system (glibc's malloc_trim)."""
    libc = ctypes.CDLL(None)
    if hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


class SeccompCompileError(Exception):
    """libseccomp refused a rule; the caller turns this into a typed error naming it."""


def compile_bpf(default_action: int, arches: Sequence[int],
                rules: Sequence[CompiledRule]) -> bytes:
    """Build the filter and export it as an array of `struct sock_filter` (8 bytes each).

    Rules naming a syscall the arch does not have are skipped for that arch, as runc
    does, so one profile serves x86_64, x86 and x32 together.
    """
    lib = _load()
    ctx = lib.seccomp_init(default_action)
    if not ctx:
        raise SeccompCompileError(f"seccomp_init refused default action {default_action:#x}")
    try:
        # The child sets no_new_privs itself, in the order the plan says.
        lib.seccomp_attr_set(ctx, FLTATR_CTL_NNP, 0)
        native = native_arch()
        for arch in arches:
            if arch == native:
                continue  # seccomp_init already added it
            rc = lib.seccomp_arch_add(ctx, arch)
            if rc != 0 and rc != -17:  # -EEXIST
                raise SeccompCompileError(f"cannot add architecture {arch:#x}: "
                                          f"{os.strerror(-rc)}")
        if native not in arches:
            lib.seccomp_arch_remove(ctx, native)
        for rule in rules:
            # Resolved without an arch, a name gets the native number, or one of
            # libseccomp's negative pseudo-numbers for syscalls only other filter arches
            # have (socketcall on x86); libseccomp maps it to each arch in the filter.
            nr = lib.seccomp_syscall_resolve_name(rule.syscall.encode())
            if nr == NR_SCMP_ERROR:
                continue  # unknown to this libseccomp: an older one, as runc skips it
            conds = (ArgCmp * max(1, len(rule.conditions)))()
            for i, c in enumerate(rule.conditions):
                conds[i] = ArgCmp(c.index, CMP_OPS[c.op], c.value & 0xFFFFFFFFFFFFFFFF,
                                  c.value_two & 0xFFFFFFFFFFFFFFFF)
            rc = lib.seccomp_rule_add_array(ctx, rule.action, nr, len(rule.conditions),
                                            conds)
            if rc == -17:  # -EEXIST: same rule twice (e.g. from two profile entries)
                continue
            if rc != 0:
                raise SeccompCompileError(
                    f"cannot add a rule for {rule.syscall}: {os.strerror(-rc)}")
        fd = os.memfd_create("stackd-seccomp", 0)
        try:
            rc = lib.seccomp_export_bpf(ctx, fd)
            if rc != 0:
                raise SeccompCompileError(f"cannot export the filter: {os.strerror(-rc)}")
            size = os.lseek(fd, 0, os.SEEK_END)
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)
