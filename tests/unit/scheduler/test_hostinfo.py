"""This host as a scheduler node, read from /proc."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stackd.errors import HostError
from stackd.hostinfo import local_node, memory_total, pid_max


def fake_proc(tmp_path: Path, meminfo: str, pid_max: str = "4194304\n") -> Path:
    (tmp_path / "sys/kernel").mkdir(parents=True)
    (tmp_path / "meminfo").write_text(meminfo)
    (tmp_path / "sys/kernel/pid_max").write_text(pid_max)
    return tmp_path


def test_local_node_reads_capacity_from_proc(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, "MemTotal:        2048 kB\nMemFree:  1 kB\n")
    n = local_node({"zone": "lab"}, proc=proc)
    assert (n.memory, n.pids) == (2048 * 1024, 4194304)
    assert n.cpus == len(os.sched_getaffinity(0))
    assert n.name == os.uname().nodename
    assert dict(n.labels) == {"zone": "lab"}


def test_the_real_host_has_room_for_something() -> None:
    n = local_node()
    assert n.cpus >= 1 and n.memory > 64 << 20 and n.pids > 100


def test_missing_or_garbled_proc_is_a_host_error(tmp_path: Path) -> None:
    with pytest.raises(HostError, match=r"cannot read .*meminfo"):
        memory_total(tmp_path)
    proc = fake_proc(tmp_path, "MemFree: 1 kB\n", pid_max="lots\n")
    with pytest.raises(HostError, match="has no MemTotal line"):
        memory_total(proc)
    with pytest.raises(HostError, match="does not hold a number"):
        pid_max(proc)
