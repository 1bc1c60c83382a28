"""stats' NET I/O and BLOCK I/O: a container's interfaces' bytes (loopback left out),
and its cgroup's block device bytes in either cgroup version."""

from __future__ import annotations

from pathlib import Path

from stackd.runtime.cgroups.base import read_io_bytes
from stackd.runtime.netcounters import net_bytes, parse_net_dev

NET_DEV = """\
Inter-|   Receive                                                |  Transmit
 face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop …
    lo: 5000 50 0 0 0 0 0 0 5000 50 0 0 0 0 0 0
  eth0: 1234 10 0 0 0 0 0 0 648 8 0 0 0 0 0 0
  eth1: 66 1 0 0 0 0 0 0 2 1 0 0 0 0 0 0
"""


def test_every_interface_but_loopback_is_counted() -> None:
    assert parse_net_dev(NET_DEV) == (1300, 650)


def test_a_process_that_is_gone_reads_as_nothing(tmp_path: Path) -> None:
    assert net_bytes(999_999_999, proc=tmp_path) == (0, 0)
    (tmp_path / "7" / "net").mkdir(parents=True)
    (tmp_path / "7" / "net" / "dev").write_text(NET_DEV)
    assert net_bytes(7, proc=tmp_path) == (1300, 650)


def test_block_io_from_either_cgroup_version(tmp_path: Path) -> None:
    v1 = tmp_path / "blkio.throttle.io_service_bytes_recursive"
    v1.write_text("8:0 Read 4096\n8:0 Write 512\n8:0 Sync 0\n8:0 Total 4608\n"
                  "8:16 Read 4\n8:16 Write 0\nTotal 4612\n")
    assert read_io_bytes(v1) == (4100, 512)
    v2 = tmp_path / "io.stat"
    v2.write_text("8:0 rbytes=100 wbytes=20 rios=3 wios=1 dbytes=0 dios=0\n"
                  "8:16 rbytes=1 wbytes=2 rios=1 wios=1 dbytes=0 dios=0\n")
    assert read_io_bytes(v2) == (101, 22)
    assert read_io_bytes(tmp_path / "missing") == (0, 0)
