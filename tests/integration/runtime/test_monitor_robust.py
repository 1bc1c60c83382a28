"""The monitor stays up, idle and in charge whatever its containers and clients do:
chatty containers deleted all at once leave no busy loop, clients that break off or
send garbage are answered or dropped, and TTY containers never hang it up."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
from pathlib import Path

import pytest
import trio

from stackd.errors import NotFoundError
from stackd.runtime.containerspec import LogConfig
from stackd.runtime.layout import MonitorPaths

pytestmark = pytest.mark.root

CHATTY = ("sh", "-c", "while :; do echo xxxxxxxx; done")
MiB = 1024 * 1024
LOW_NOFILE = 64


def monitor_pid(rt) -> int:  # type: ignore[no-untyped-def]
    return int(MonitorPaths(rt.roots.run).pidfile.read_text())


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def idle_cpu(pid: int, seconds: float = 1.0) -> float:
    before = cpu_seconds(pid)
    await trio.sleep(seconds)
    return cpu_seconds(pid) - before


async def trash_emptied(rt) -> None:  # type: ignore[no-untyped-def]
    """Wait until the monitor removed deleted containers' directories (it does that
    when it has nothing else to do), so what is measured after is the idle loop."""
    bases = [rt.roots.run / "containers", rt.roots.state / "containers"]
    with trio.fail_after(20):
        while any(e.name.startswith(".deleted-") for b in bases if b.is_dir()
                  for e in b.iterdir()):
            await trio.sleep(0.05)


def monitor_log(rt) -> str:  # type: ignore[no-untyped-def]
    log = MonitorPaths(rt.roots.run).log
    return log.read_text() if log.exists() else ""


# ---- 1. no busy loop after deleting chatty containers at once ----------------------


@pytest.mark.parametrize("tty", [False, True], ids=["pipes", "tty"])
async def test_deleting_chatty_containers_at_once_leaves_the_monitor_idle(rt, make_spec, tty):
    # The anchor keeps the monitor alive (it exits when it holds nothing).
    await rt.create(make_spec("anchor", "sleep", "1000"))
    await rt.start("anchor")
    pid = monitor_pid(rt)
    ids = [f"chatty-{i}" for i in range(10)]
    # A monitor that reads a chatty container's pipe until it is empty never gets to
    # the next request: the bounds turn that hang into a failure.
    with trio.fail_after(30):
        for cid in ids:
            await rt.create(make_spec(cid, *CHATTY, terminal=tty,
                                      log=LogConfig(max_size=1 * MiB, max_files=2)))
            await rt.start(cid)
        await trio.sleep(0.5)
        async with trio.open_nursery() as nursery:
            for cid in ids:
                nursery.start_soon(rt.delete, cid, True)
    assert [s.id for s in await rt.list()] == ["anchor"]
    await trash_emptied(rt)
    # One `sleep` is left: the monitor has nothing to do but wait.
    used = await idle_cpu(pid)
    assert used < 0.1, f"the idle monitor used {used:.2f} s of CPU in 1 s"
    assert monitor_pid(rt) == pid
    # And it still serves.
    await rt.kill("anchor", "SIGKILL")
    assert (await rt.wait("anchor")).signal == signal.SIGKILL
    await rt.delete("anchor")


# ---- 2. clients that break off, or send garbage -------------------------------------


def raw(sock_path: str, payload: bytes, *, read_reply: bool) -> bytes:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(10)
        s.connect(sock_path)
        if payload:
            s.sendall(payload)
        if not read_reply:
            return b""
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        return buf
    finally:
        s.close()


GARBAGE = [
    b"not json\n",
    b"\xff\xfe\x00garbage\n",
    b"[1, 2, 3]\n",
    b'"a string"\n',
    b"null\n",
    b'{"op": 42}\n',
    b'{"op": "nonsense"}\n',
    b'{"op": "create"}\n',
    b'{"op": "create", "spec": {"id": "x"}}\n',
    b'{"op": "create", "spec": "x"}\n',
    b'{"op": "start"}\n',
    b'{"op": "kill", "id": "anchor", "signal": "SIGNOPE"}\n',
    b'{"op": "kill", "id": "anchor", "signal": 12345}\n',
    b'{"op": "kill", "id": "anchor", "signal": ["x"]}\n',
    b'{"op": "wait", "id": ["a"]}\n',
    # Ids that would name a path outside the containers directory.
    b'{"op": "delete", "id": "..", "force": true}\n',
    b'{"op": "delete", "id": "../..", "force": true}\n',
    b'{"op": "wait", "id": "../monitor"}\n',
    b'{"op": "delete", "id": "/etc", "force": true}\n',
    b'{"op": "delete", "id": ""}\n',
]


async def test_garbage_requests_get_typed_errors_and_change_nothing(rt, make_spec):
    await rt.create(make_spec("anchor", "sleep", "1000"))
    await rt.start("anchor")
    pid = monitor_pid(rt)
    sock = str(MonitorPaths(rt.roots.run).socket)
    for payload in GARBAGE:
        reply = await trio.to_thread.run_sync(lambda p=payload: raw(sock, p, read_reply=True))
        assert reply.endswith(b"\n"), payload
        answer = json.loads(reply)
        assert answer["ok"] is False, payload
        assert answer["kind"] in ("UsageError", "NotFoundError", "SpecError"), (payload, answer)
    # Specs of the right shape with a hostile field: the monitor (which reads them
    # without pydantic) names the field, and nothing is created.
    good = make_spec("hostile", "true").model_dump(mode="json")
    for field, value in [("process", {"args": "sh"}), ("devices", [{"source": "/dev/null",
                          "target": "/dev/x", "permissions": "rw\n"}]),
                         ("mounts", [{"type": "overlay", "target": "/"}]), ("labels", []),
                         ("smuggled", 1)]:
        line = json.dumps({"op": "create", "spec": {**good, field: value}}).encode() + b"\n"
        reply = await trio.to_thread.run_sync(lambda p=line: raw(sock, p, read_reply=True))
        answer = json.loads(reply)
        assert answer["kind"] == "SpecError", (field, answer)
        assert answer["error"].startswith(f"invalid container spec: spec.{field}"), answer
    assert "Traceback" not in monitor_log(rt)
    assert monitor_pid(rt) == pid
    assert rt.roots.run.is_dir() and rt.roots.state.is_dir()
    assert [s.status for s in await rt.list()] == ["running"]
    await rt.delete("anchor", force=True)


async def test_clients_breaking_off_amid_real_traffic_leave_everything_accounted_for(
        rt, make_spec):
    await rt.create(make_spec("anchor", "sleep", "1000"))
    await rt.start("anchor")
    pid = monitor_pid(rt)
    sock = str(MonitorPaths(rt.roots.run).socket)
    spec_json = make_spec("ghost-0", "sleep", "1000").model_dump(mode="json")

    def abuse(round_: int) -> None:
        create = {"op": "create", "spec": {**spec_json, "id": f"ghost-{round_}",
                                           "name": f"ghost-{round_}"}}
        line = json.dumps(create).encode() + b"\n"
        raw(sock, line[: len(line) // 2], read_reply=False)   # half a request
        raw(sock, b"", read_reply=False)                      # connect, then nothing
        raw(sock, line, read_reply=False)                     # gone before the reply
        raw(sock, b'{"op": "wait", "id": "anchor"}\n', read_reply=False)  # gone while waiting
        raw(sock, GARBAGE[round_ % len(GARBAGE)], read_reply=False)
        raw(sock, b'{"op": "ping"}\n{"op": "ping"}\n', read_reply=False)

    async def abusers() -> None:
        async with trio.open_nursery() as nursery:
            for worker in range(3):
                async def loop(worker: int = worker) -> None:
                    for n in range(worker, 30, 3):
                        await trio.to_thread.run_sync(abuse, n)
                nursery.start_soon(loop)

    async def traffic(worker: int) -> None:
        for n in range(6):
            cid = f"real-{worker}-{n}"
            await rt.create(make_spec(cid, "sh", "-c", "echo hi; sleep 1000"))
            await rt.start(cid)
            await rt.kill(cid, "SIGKILL")
            assert (await rt.wait(cid)).signal == signal.SIGKILL
            await rt.delete(cid)

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(abusers)
            for worker in range(2):
                nursery.start_soon(traffic, worker)

    assert monitor_pid(rt) == pid
    os.kill(pid, 0)
    assert "Traceback" not in monitor_log(rt)
    # What the half-gone clients created exists and is the monitor's to run and delete;
    # nothing else does.
    states = {s.id: s for s in await rt.list()}
    assert states.pop("anchor").status == "running"
    assert set(states) <= {f"ghost-{n}" for n in range(30)}
    assert states, "no ghost was created: the abuse did not reach the monitor"
    for cid, state in states.items():
        assert state.status == "created", cid
        await rt.start(cid)
        await rt.kill(cid, "SIGKILL")
        assert (await rt.wait(cid)).signal == signal.SIGKILL
        await rt.delete(cid)
    await rt.delete("anchor", force=True)
    with pytest.raises(NotFoundError):
        await rt.inspect("anchor")


async def test_a_client_holding_a_half_request_does_not_keep_the_monitor_forever(
        rt, make_spec):
    await rt.create(make_spec("anchor", "sleep", "1000"))
    pid = monitor_pid(rt)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(MonitorPaths(rt.roots.run).socket))
    s.sendall(b'{"op": "pi')
    try:
        await rt.delete("anchor", force=True)
        # Idle but for a client that never finishes its request: the monitor gives up
        # on it and exits, as it does when idle, rather than living on for it.
        with trio.fail_after(15):
            while Path(f"/proc/{pid}").exists():
                await trio.sleep(0.1)
    finally:
        s.close()


# ---- 3. TTY containers never hang up the monitor --------------------------------------


async def test_tty_containers_ending_leave_the_monitor_serving(rt, make_spec):
    await rt.create(make_spec("anchor", "sleep", "1000"))
    await rt.start("anchor")
    pid = monitor_pid(rt)
    # The monitor must have no controlling terminal, now or after any pty came and went.
    assert _tty_nr(pid) == 0
    await rt.create(make_spec("tty-quick", "sh", "-c", "echo bye", terminal=True))
    await rt.start("tty-quick")
    assert (await rt.wait("tty-quick")).code == 0
    await rt.delete("tty-quick")
    for i in range(5):
        cid = f"tty-{i}"
        await rt.create(make_spec(cid, "sh", "-c", "tty; sleep 1000", terminal=True))
        await rt.start(cid)
        if i % 2:
            await rt.kill(cid, "SIGKILL")
            await rt.wait(cid)
        await rt.delete(cid, force=True)
        assert _tty_nr(pid) == 0
    assert monitor_pid(rt) == pid
    os.kill(pid, 0)
    # A hang-up signal (a terminal going away, or someone's `kill -HUP`) is harmless.
    os.kill(pid, signal.SIGHUP)
    await trio.sleep(0.2)
    os.kill(pid, 0)
    await rt.create(make_spec("after", "sh", "-c", "echo still", terminal=True))
    await rt.start("after")
    assert (await rt.wait("after")).code == 0
    assert [r.line async for r in rt.logs("after")] == ["still\r"]  # a tty says \r\n
    await rt.delete("after")
    assert monitor_pid(rt) == pid
    await rt.delete("anchor", force=True)


def _tty_nr(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[4])


# ---- descriptors: the monitor needs several per container ------------------------------


async def test_a_low_descriptor_limit_binds_the_containers_not_the_monitor(rt, make_spec):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 1024:
        pytest.skip("the hard descriptor limit is too low to raise anything")
    # The monitor starts with the limit of whoever starts it: a low one here.
    resource.setrlimit(resource.RLIMIT_NOFILE, (LOW_NOFILE, hard))
    try:
        await rt.create(make_spec("first", "sh", "-c", "ulimit -n; sleep 1000"))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    await rt.start("first")
    # Several descriptors per container: 20 would not fit in 64.
    with trio.fail_after(60):
        for i in range(20):
            await rt.create(make_spec(f"many-{i}", "sleep", "1000"))
            await rt.start(f"many-{i}")
    assert sum(s.status == "running" for s in await rt.list()) == 21
    # The containers still get the limit the monitor was started with.
    with trio.fail_after(10):
        async for rec in rt.logs("first", follow=True):
            assert rec.line == str(LOW_NOFILE)
            break
    async with trio.open_nursery() as nursery:
        for state in await rt.list():
            nursery.start_soon(rt.delete, state.id, True)
