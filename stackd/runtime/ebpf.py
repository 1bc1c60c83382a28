"""The little of eBPF that stackd uses, without a compiler: a program written as
instructions here, hash maps, loading under the kernel's verifier, a link that
attaches a program to a cgroup for as long as its descriptor is open, and an
attachment that lasts as long as the cgroup.

stackd's programs are a few dozen instructions (the socket balancer's,
stackd/netbridge/socketlb.py; a container's device filter on cgroup v2,
stackd/runtime/cgroups/devicefilter.py), so they
are written in Python rather than compiled: a C compiler and libbpf on every host (or
bcc's LLVM in the daemon, tens of MB) would cost more than the program. Everything is
a descriptor the process owns: when it exits, the kernel detaches and frees it all.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from dataclasses import dataclass, field

from stackd.runtime import syscalls

# bpf(2) commands, map and program types, attach types, helpers (linux/bpf.h).
_MAP_CREATE, _MAP_UPDATE_ELEM, _MAP_DELETE_ELEM, _MAP_GET_NEXT_KEY = 0, 2, 3, 4
_PROG_LOAD, _PROG_ATTACH, _LINK_CREATE = 5, 8, 28
MAP_HASH, MAP_LRU_HASH = 1, 9
MAP_NO_PREALLOC = 1  # a hash map's entries allocated as added, not all up front
PROG_CGROUP_DEVICE, PROG_CGROUP_SOCK_ADDR = 15, 18
ATTACH_CGROUP_DEVICE, ATTACH_INET4_CONNECT, ATTACH_INET4_GETPEERNAME = 6, 10, 29
F_ALLOW_MULTI = 2  # another program on the cgroup (or its parents) runs too
HELPER_MAP_LOOKUP, HELPER_MAP_UPDATE = 1, 2
HELPER_SOCKET_COOKIE, HELPER_NETNS_COOKIE = 46, 122
_ATTR_SIZE = 144  # sizeof(union bpf_attr) in the headers these numbers come from

R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = range(11)

# Instruction classes, sizes, modes and operations.
_LD, _LDX, _ST, _STX, _ALU, _JMP, _ALU64 = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x07
_W, _DW = 0x00, 0x18
_IMM, _MEM, _ATOMIC = 0x00, 0x60, 0xC0
_K, _X = 0x00, 0x08
_ADD, _AND, _LSH, _RSH, _MOD, _MOV = 0x00, 0x50, 0x60, 0x70, 0x90, 0xB0
_JEQ, _JGE, _JNE, _CALL, _EXIT = 0x10, 0x30, 0x50, 0x80, 0x90
_FETCH = 0x01
_PSEUDO_MAP_FD = 1
_JUMPS = {"==": _JEQ, "!=": _JNE, ">=": _JGE}


@dataclass
class Program:
    """A program being written: one method per instruction used, jumps to labels."""

    _insns: list[tuple[int, int, int, int | str, int]] = field(default_factory=list)
    _labels: dict[str, int] = field(default_factory=dict)

    def _emit(self, code: int, dst: int = 0, src: int = 0, off: int | str = 0,
              imm: int = 0) -> None:
        self._insns.append((code, dst, src, off, imm))

    def label(self, name: str) -> None:
        self._labels[name] = len(self._insns)

    def mov(self, dst: int, src: int) -> None:
        self._emit(_ALU64 | _MOV | _X, dst, src)

    def mov_imm(self, dst: int, imm: int) -> None:
        self._emit(_ALU64 | _MOV | _K, dst, imm=imm)

    def add(self, dst: int, src: int) -> None:
        self._emit(_ALU64 | _ADD | _X, dst, src)

    def add_imm(self, dst: int, imm: int) -> None:
        self._emit(_ALU64 | _ADD | _K, dst, imm=imm)

    def and_imm(self, dst: int, imm: int) -> None:
        self._emit(_ALU64 | _AND | _K, dst, imm=imm)

    def lsh_imm(self, dst: int, imm: int) -> None:
        self._emit(_ALU64 | _LSH | _K, dst, imm=imm)

    def rsh_imm(self, dst: int, imm: int) -> None:
        self._emit(_ALU64 | _RSH | _K, dst, imm=imm)

    def mod32(self, dst: int, src: int) -> None:
        self._emit(_ALU | _MOD | _X, dst, src)

    def load32(self, dst: int, src: int, off: int) -> None:
        self._emit(_LDX | _W | _MEM, dst, src, off)

    def store32(self, dst: int, off: int, src: int) -> None:
        self._emit(_STX | _W | _MEM, dst, src, off)

    def store64(self, dst: int, off: int, src: int) -> None:
        self._emit(_STX | _DW | _MEM, dst, src, off)

    def store32_imm(self, dst: int, off: int, imm: int) -> None:
        self._emit(_ST | _W | _MEM, dst, off=off, imm=imm)

    def fetch_add32(self, dst: int, off: int, src: int) -> None:
        """Atomically add `src` to the u32 at dst+off; `src` gets the old value."""
        self._emit(_STX | _W | _ATOMIC, dst, src, off, _ADD | _FETCH)

    def load_imm64(self, dst: int, value: int) -> None:
        self._emit(_LD | _DW | _IMM, dst, imm=value & 0xFFFFFFFF)
        self._emit(0, imm=(value >> 32) & 0xFFFFFFFF)

    def load_map(self, dst: int, map_fd: int) -> None:
        self._emit(_LD | _DW | _IMM, dst, _PSEUDO_MAP_FD, imm=map_fd)
        self._emit(0)

    def jump_if(self, dst: int, op: str, imm: int, label: str) -> None:
        self._emit(_JMP | _JUMPS[op] | _K, dst, off=label, imm=imm)

    def jump_if_reg(self, dst: int, op: str, src: int, label: str) -> None:
        self._emit(_JMP | _JUMPS[op] | _X, dst, src, off=label)

    def call(self, helper: int) -> None:
        self._emit(_JMP | _CALL, imm=helper)

    def exit(self) -> None:
        self._emit(_JMP | _EXIT)

    def assemble(self) -> bytes:
        out = bytearray()
        for i, (code, dst, src, off, imm) in enumerate(self._insns):
            if isinstance(off, str):
                off = self._labels[off] - (i + 1)
            imm = imm - (1 << 32) if imm >= 1 << 31 else imm
            out += struct.pack("<BBhi", code, (src << 4) | dst, off, imm)
        return bytes(out)


def _attr(fmt: str, *values: object) -> bytearray:
    attr = bytearray(_ATTR_SIZE)
    struct.pack_into(fmt, attr, 0, *values)
    return attr


def _name(text: str) -> bytes:
    return text.encode()[:15]


class HashMap:
    """A BPF hash map of fixed-size keys and values; its descriptor is its life."""

    def __init__(self, kind: int, key_size: int, value_size: int, max_entries: int,
                 name: str, flags: int = 0) -> None:
        self.key_size = key_size
        self.fd = syscalls.bpf(_MAP_CREATE, _attr("<7I16s", kind, key_size, value_size,
                                                  max_entries, flags, 0, 0, _name(name)))

    def update(self, key: bytes, value: bytes) -> None:
        k, v = ctypes.create_string_buffer(key), ctypes.create_string_buffer(value)
        syscalls.bpf(_MAP_UPDATE_ELEM, _attr("<IIQQQ", self.fd, 0, ctypes.addressof(k),
                                             ctypes.addressof(v), 0))

    def delete(self, key: bytes) -> None:
        k = ctypes.create_string_buffer(key)
        try:
            syscalls.bpf(_MAP_DELETE_ELEM, _attr("<IIQ", self.fd, 0, ctypes.addressof(k)))
        except FileNotFoundError:
            pass

    def keys(self) -> list[bytes]:
        found: list[bytes] = []
        nxt = ctypes.create_string_buffer(self.key_size)
        while True:
            cur = ctypes.create_string_buffer(found[-1]) if found else None
            try:
                syscalls.bpf(_MAP_GET_NEXT_KEY, _attr(
                    "<IIQQ", self.fd, 0, ctypes.addressof(cur) if cur else 0,
                    ctypes.addressof(nxt)))
            except FileNotFoundError:
                return found
            found.append(nxt.raw[:self.key_size])

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def load(program: Program, *, prog_type: int, attach_type: int, name: str) -> int:
    """The loaded program's descriptor; OSError carrying the verifier's log if refused."""
    insns = program.assemble()
    code, lic = ctypes.create_string_buffer(insns), ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(1 << 16)

    def attempt(log_level: int) -> int:
        return syscalls.bpf(_PROG_LOAD, _attr(
            "<IIQQIIQII16sII", prog_type, len(insns) // 8, ctypes.addressof(code),
            ctypes.addressof(lic), log_level, len(log) if log_level else 0,
            ctypes.addressof(log) if log_level else 0, 0, 0, _name(name), 0, attach_type))
    try:
        return attempt(0)
    except OSError as err:
        if err.errno not in (errno.EACCES, errno.EINVAL):
            raise
        try:  # once more, with the verifier's log, to say why
            return attempt(1)
        except OSError:
            text = log.value.decode(errors="replace").strip().splitlines()
            raise OSError(err.errno, f"the kernel refused eBPF program {name}: "
                          f"{' / '.join(text[-3:]) or err.strerror}") from None


def attach_cgroup(prog_fd: int, cgroup_dir: str, attach_type: int) -> None:
    """Attach to a cgroup (v2) for the cgroup's life, beside any other program there
    and on its parents (all must allow): no descriptor of ours holds it, so a process
    that dies (a monitor killed) leaves it in force."""
    cg = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        syscalls.bpf(_PROG_ATTACH, _attr("<IIII", cg, prog_fd, attach_type, F_ALLOW_MULTI))
    finally:
        os.close(cg)


def link_cgroup(prog_fd: int, cgroup_dir: str, attach_type: int) -> int:
    """Attach to a cgroup (v2) beside any other program there; the link's descriptor
    holds it: closing it, or the process ending, detaches it."""
    cg = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return syscalls.bpf(_LINK_CREATE, _attr("<IIII", prog_fd, cg, attach_type, 0))
    finally:
        os.close(cg)
