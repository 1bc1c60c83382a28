"""The lifecycle as a state machine, state visible to any process, and containers that
outlive the process that created them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
import trio

from stackd.errors import AlreadyExistsError, ConflictError, NotFoundError, UsageError
from stackd.runtime import Runtime

pytestmark = pytest.mark.root

LOOP = "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.05; done"


async def test_created_then_running_then_exited(rt, make_spec, roots):
    state = await rt.create(make_spec("life-1", "sh", "-c", "sleep 0.2; exit 4",
                                      labels={"io.stackd.service": "web"}))
    assert (state.status, state.labels, state.started_at) == (
        "created", {"io.stackd.service": "web"}, None)
    assert state.pid is not None and os.path.exists(f"/proc/{state.pid}")
    with pytest.raises(AlreadyExistsError):
        await rt.create(make_spec("life-1", "true"))

    await rt.start("life-1")
    state = await rt.inspect("life-1")
    assert state.status == "running" and state.started_at is not None
    with pytest.raises(ConflictError, match="already started"):
        await rt.start("life-1")
    with pytest.raises(ConflictError, match="is running"):
        await rt.delete("life-1")

    # Another Runtime (as another process would) sees the same, from the run dir.
    other = Runtime(roots)
    assert [s.id for s in await other.list()] == ["life-1"]
    exit_status = await other.wait("life-1")
    assert exit_status.code == 4
    state = await rt.inspect("life-1")
    assert (state.status, state.exit, state.pid) == ("exited", exit_status, None)
    assert state.finished_at is not None and state.finished_at >= state.started_at
    assert await rt.wait("life-1") == exit_status  # waiting again answers at once
    await rt.delete("life-1")
    with pytest.raises(NotFoundError):
        await rt.inspect("life-1")
    with pytest.raises(NotFoundError):
        await rt.delete("life-1")
    assert await rt.list() == []


async def test_stop_and_delete_of_a_created_container(rt, make_spec):
    await rt.create(make_spec("life-created", "true"))
    with trio.fail_after(2):
        exit_status = await rt.stop("life-created", grace=10)
    assert exit_status.signal == 9
    await rt.delete("life-created")


async def test_force_delete_of_a_running_container(rt, make_spec):
    await rt.create(make_spec("life-force", "sh", "-c", "sleep 60 & sleep 60 & wait"))
    await rt.start("life-force")
    with trio.fail_after(5):
        while (await rt.stats("life-force")).pids != 3:
            await trio.sleep(0.02)
    await rt.delete("life-force", force=True)
    assert await rt.list() == []


async def test_bad_ids_and_unknown_containers(rt, make_spec):
    with pytest.raises(UsageError, match="invalid container id"):
        await rt.inspect("../etc")
    with pytest.raises(NotFoundError):
        await rt.stats("nothing")
    with pytest.raises(NotFoundError):
        await rt.kill("nothing")


CREATOR = textwrap.dedent("""
    import sys, trio
    from pathlib import Path
    from stackd.roots import Roots
    from stackd.runtime import Runtime
    from stackd.runtime.containerspec import ContainerSpec, Mount, ProcessSpec

    LOOP, layer, trigger = sys.argv[1], sys.argv[2], sys.argv[3]

    async def main():
        rt = Runtime(Roots.from_env())
        for i in range(5):
            args = ("sh", "-c", LOOP)
            mounts = ()
            if i == 4:  # exits with 7 once the test makes the trigger file
                args = ("sh", "-c",
                        "echo waiting; while [ ! -e /t/go ]; do sleep 0.02; done; exit 7")
                mounts = (Mount(type="bind", source=trigger, target="/t"),)
            spec = ContainerSpec(id=f"kept-{i}", name=f"kept-{i}", layers=(layer,),
                                 process=ProcessSpec(args=args), mounts=mounts)
            await rt.create(spec)
            await rt.start(spec.id)
        print("ready", flush=True)
        await trio.sleep_forever()

    trio.run(main)
""")


async def test_containers_survive_their_creator_being_killed(rt, roots, busybox_layer,
                                                             tmp_path):
    trigger = tmp_path / "trigger"
    trigger.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    creator = subprocess.Popen([sys.executable, "-c", CREATOR, LOOP, str(busybox_layer),
                                str(trigger)], stdout=subprocess.PIPE, env=env)
    try:
        line = await trio.to_thread.run_sync(creator.stdout.readline)
        assert line == b"ready\n"
    finally:
        creator.send_signal(signal.SIGKILL)
        creator.wait()
        creator.stdout.close()

    # This process never created anything: it adopts what is there.
    states = await rt.list()
    assert [(s.id, s.status) for s in states] == [(f"kept-{i}", "running") for i in range(5)]

    async def count(cid: str) -> int:
        return len([r async for r in rt.logs(cid)])

    before = [await count(f"kept-{i}") for i in range(4)]
    await trio.sleep(0.5)
    after = [await count(f"kept-{i}") for i in range(4)]
    assert all(a > b for a, b in zip(after, before, strict=True))

    (trigger / "go").touch()
    exit_status = await rt.wait("kept-4")
    assert exit_status.code == 7
    states = {s.id: s for s in await rt.list()}
    assert states["kept-4"].status == "exited" and states["kept-4"].exit.code == 7
    assert [states[f"kept-{i}"].status for i in range(4)] == ["running"] * 4
    for i in range(5):
        await rt.delete(f"kept-{i}", force=True)


async def test_concurrent_clients_share_one_monitor(make_spec, roots, rt):
    from stackd.leaks import monitors

    clients = [Runtime(roots) for _ in range(4)]
    async with trio.open_nursery() as nursery:
        for i, client in enumerate(clients):
            nursery.start_soon(client.create, make_spec(f"conc-{i}", "sleep", "30"))
    assert len(monitors(roots.id)) == 1
    assert sorted(s.id for s in await rt.list()) == [f"conc-{i}" for i in range(4)]
    for i in range(4):
        await rt.delete(f"conc-{i}", force=True)


async def test_missing_layer_is_not_found(rt, make_spec, tmp_path):
    spec = make_spec("life-nolayer", "true").model_copy(
        update={"layers": (str(tmp_path / "missing"),)})
    with pytest.raises(NotFoundError, match=r"layer directory .*missing"):
        await rt.create(spec)
    assert await rt.list() == []
