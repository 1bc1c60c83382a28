"""A tiny root filesystem from Debian's busybox-static, for tests and benchmarks.

No machine here reaches Docker Hub, so every test image starts from this.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

BUSYBOX = Path("/bin/busybox")

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
app:x:1000:1000:app user:/home/app:/bin/sh
"""
GROUP = """root:x:0:
daemon:x:1:
wheel:x:10:app
staff:x:50:app
app:x:1000:
nogroup:x:65534:
"""


def busybox_available() -> bool:
    return BUSYBOX.exists()


def make_busybox_rootfs(dest: Path) -> Path:
    """Lay out a busybox root filesystem at dest (created) and return it."""
    if not busybox_available():
        raise RuntimeError("busybox-static is not installed (apt-get install busybox-static)")
    dest.mkdir(parents=True, exist_ok=True)
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "tmp", "root", "home/app",
              "proc", "sys", "dev", "var/www", "run"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    os.chmod(dest / "tmp", 0o1777)
    shutil.copy2(BUSYBOX, dest / "bin/busybox")
    applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        link = dest / "bin" / applet
        if applet != "busybox" and not link.exists():
            link.symlink_to("busybox")
    (dest / "etc/passwd").write_text(PASSWD)
    (dest / "etc/group").write_text(GROUP)
    os.chown(dest / "home/app", 1000, 1000)
    (dest / "var/www/index.html").write_text("hello from busybox\n")
    return dest


def make_busybox_tar(dest_tar: Path, workdir: Path) -> Path:
    """The same root filesystem as an uncompressed tar (for `stackd image import`)."""
    root = make_busybox_rootfs(workdir / "busybox-rootfs")
    subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(dest_tar), "."],
                   check=True)
    return dest_tar
