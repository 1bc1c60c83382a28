"""Read-only all the way down (stackd.runtime.readonly_mount): mount_setattr with
AT_RECURSIVE, and the fallback for kernels before 5.12 (one remount per mount), on a
bind whose source has mounts below it."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from stackd.runtime import readonly_mount
from stackd.runtime import syscalls as sc

pytestmark = pytest.mark.root

MOUNTINFO = """\
22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:30 / /ro rw,nosuid,nodev - tmpfs tmpfs rw
31 30 0:31 / /ro/sub rw,noexec,noatime - tmpfs tmpfs rw
32 30 0:32 / /ro/with\\040space rw - tmpfs tmpfs rw
33 22 0:33 / /rox rw - tmpfs tmpfs rw
"""


def test_mounts_at_or_below_names_each_mount_once_with_its_flags() -> None:
    assert readonly_mount.mounts_at_or_below(MOUNTINFO, "/ro/") == [
        ("/ro", sc.MS_NOSUID | sc.MS_NODEV),
        ("/ro/sub", sc.MS_NOEXEC | sc.MS_NOATIME),
        ("/ro/with space", 0),
    ]  # and not /rox, whose name only starts like it


def in_private_mount_ns(body: Callable[[], int]) -> int:
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            sc.unshare(sc.CLONE_NEWNS)
            sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
            code = body()
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def writable(path: Path) -> bool:
    try:
        path.write_text("x")
    except OSError as e:
        assert e.errno == errno.EROFS, e
        return False
    return True


@pytest.mark.parametrize("way", ["mount_setattr", "remount each"])
def test_every_mount_below_a_read_only_bind_is_read_only(tmp_path: Path, way: str) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    (source / "sub").mkdir(parents=True)
    target.mkdir()

    def body() -> int:
        sc.mount("t1", str(source / "sub"), "tmpfs", 0)
        (source / "sub" / "deeper").mkdir()
        sc.mount("t2", str(source / "sub" / "deeper"), "tmpfs", sc.MS_NOEXEC)
        sc.mount(str(source), str(target), None, sc.MS_BIND | sc.MS_REC)
        if way == "mount_setattr":
            fd = os.open(target, os.O_PATH)
            readonly_mount.make_readonly(fd)
            os.close(fd)
        else:
            readonly_mount.remount_each_readonly(str(target))
        seen = [writable(target / p / "f") for p in ("", "sub", "sub/deeper")]
        with open("/proc/self/mountinfo") as f:
            below = readonly_mount.mounts_at_or_below(f.read(), str(target))
        kept_noexec = dict(below)[str(target / "sub/deeper")] & sc.MS_NOEXEC
        # The source's own mounts are other mounts: they stay writable.
        source_rw = writable(source / "sub" / "deeper" / "f")
        return 0 if (seen, len(below), bool(kept_noexec), source_rw) == \
            ([False] * 3, 3, True, True) else 1

    assert in_private_mount_ns(body) == 0
