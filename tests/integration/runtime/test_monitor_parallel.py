"""The monitor sets containers up in parallel: one slow create does not hold up others.

A create is answered once the container's first process has built its root
filesystem; the monitor serves every other request meanwhile (it used to wait,
so an `up` of 50 services set them up one at a time). Here one container's setup
blocks on reading its /etc/passwd — a FIFO in its top layer — until the test writes
to it: while it blocks, another container is created, started and runs.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import trio

from stackd.hostnames import cgroup_relpath
from stackd.runtime.containerspec import ContainerSpec, ProcessSpec

pytestmark = pytest.mark.root


async def test_a_blocked_setup_does_not_hold_up_other_containers(rt, make_spec, busybox_layer,
                                                                 roots, tmp_path: Path):
    top = tmp_path / "fifo-layer"
    (top / "etc").mkdir(parents=True)
    os.mkfifo(top / "etc" / "passwd")
    os.chmod(tmp_path, 0o755)
    slow = ContainerSpec(id="par-slow", name="par-slow", layers=(str(top), str(busybox_layer)),
                         process=ProcessSpec(args=("sleep", "60"), user="app"))
    created = trio.Event()

    async def create_slow() -> None:
        await rt.create(slow)
        created.set()

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(create_slow)
            await trio.sleep(0.3)  # the slow one is forked and blocked on the FIFO
            assert not created.is_set()
            with trio.fail_after(5):  # the old monitor answered nobody for 30 s here
                await rt.create(make_spec("par-fast", "sleep", "60"))
                await rt.start("par-fast")
            assert (await rt.inspect("par-fast")).status == "running"
            assert not created.is_set(), "the slow create ended before its passwd was written"

            # Through the container's own root: overlayfs gives the FIFO an inode of
            # its own, so the layer's copy is another pipe. Non-blocking: ENXIO until
            # the container has it open for reading.
            procs = Path("/sys/fs/cgroup/pids", cgroup_relpath(roots.id, "par-slow"),
                         "cgroup.procs")
            pid = int(procs.read_text().split()[0])
            while True:
                try:
                    fd = os.open(f"/proc/{pid}/root/etc/passwd", os.O_WRONLY | os.O_NONBLOCK)
                    break
                except OSError as e:
                    if e.errno != errno.ENXIO:
                        raise
                    await trio.sleep(0.05)
            os.write(fd, b"app:x:1234:1234::/:/bin/sh\n")
            os.close(fd)
        await rt.start("par-slow")
    state = await rt.inspect("par-slow")
    assert state.status == "running"
    # Read from the host: an exec would look the user up in the FIFO again.
    uid_line = next(line for line in Path(f"/proc/{state.pid}/status").read_text().splitlines()
                    if line.startswith("Uid:"))
    assert uid_line.split()[1] == "1234"
