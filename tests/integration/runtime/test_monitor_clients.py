"""The monitor outlives its clients: a client killed or gone at any point of a request
never takes it down, and it keeps serving every container it holds."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import textwrap

import pytest
import trio

from stackd.runtime.layout import MonitorPaths

pytestmark = pytest.mark.root

# A client that sends its requests one by one and reads each reply: killed at a random
# moment, it dies before sending, mid-request, while the monitor works, or before reading.
CLIENT = textwrap.dedent("""
    import socket, sys
    for line in sys.argv[2:]:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sys.argv[1])
        s.sendall(line.encode() + b"\\n")
        buf = b""
        while not buf.endswith(b"\\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        s.close()
""")


def monitor_pid(rt) -> int:  # type: ignore[no-untyped-def]
    return int(MonitorPaths(rt.roots.run).pidfile.read_text())


async def test_clients_killed_mid_request_leave_the_monitor_serving_all(rt, make_spec):
    await rt.create(make_spec("anchor", "sleep", "1000"))
    await rt.start("anchor")
    pid = monitor_pid(rt)
    sock = str(MonitorPaths(rt.roots.run).socket)
    rng = random.Random(1234)
    procs = []
    for i in range(24):
        cid = f"victim-{i}"
        spec = make_spec(cid, "sh", "-c", "echo hello; sleep 1000")
        requests = [{"op": "create", "spec": spec.model_dump(mode="json")},
                    {"op": "start", "id": cid}]
        if i % 3 == 0:
            requests.append({"op": "delete", "id": cid, "force": True})
        procs.append(subprocess.Popen(
            [sys.executable, "-c", CLIENT, sock, *(json.dumps(r) for r in requests)],
            env={**os.environ, "PYTHONPATH": ""}))
        await trio.sleep(rng.uniform(0, 0.05))
        victim = procs[rng.randrange(len(procs))]
        if victim.poll() is None:
            victim.send_signal(signal.SIGKILL)
    for p in procs:
        await trio.to_thread.run_sync(p.wait)
    log = MonitorPaths(rt.roots.run).log
    assert "Traceback" not in (log.read_text() if log.exists() else "")

    assert monitor_pid(rt) == pid
    os.kill(pid, 0)  # still the same, live process
    states = {s.id: s for s in await rt.list()}
    assert states["anchor"].status == "running"
    # Every container the monitor holds is served: a command reaches it, its exit is seen.
    for cid, state in states.items():
        if state.status == "created":
            await rt.start(cid)
        await rt.kill(cid, "SIGKILL")
        exit_status = await rt.wait(cid)
        assert exit_status.signal == signal.SIGKILL or state.status == "exited"
        await rt.delete(cid, force=True)
    assert await rt.list() == []
    assert monitor_pid(rt) == pid


async def test_a_client_gone_before_its_reply_still_gets_its_container(rt, make_spec):
    await rt.create(make_spec("keeper", "sleep", "1000"))
    pid = monitor_pid(rt)
    sock = MonitorPaths(rt.roots.run).socket
    spec = make_spec("orphan-request", "sh", "-c", "echo made; sleep 1000")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(sock))
    s.sendall(json.dumps({"op": "create", "spec": spec.model_dump(mode="json")}).encode()
              + b"\n")
    s.close()  # before the reply
    with trio.fail_after(20):
        while True:
            states = {st.id: st for st in await rt.list()}
            if "orphan-request" in states:
                break
            await trio.sleep(0.05)
    # The create completed: the container is the monitor's to start, wait on and delete.
    await rt.start("orphan-request")
    with trio.fail_after(10):
        async for rec in rt.logs("orphan-request", follow=True):
            assert rec.line == "made"
            break
    await rt.kill("orphan-request", "SIGKILL")
    assert (await rt.wait("orphan-request")).signal == signal.SIGKILL
    await rt.delete("orphan-request")
    assert monitor_pid(rt) == pid
    await rt.delete("keeper", force=True)

