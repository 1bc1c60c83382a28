"""The process: user and groups from the container's passwd, env, cwd, ulimits,
exit codes and signals, stop with a grace period, init, logs."""

from __future__ import annotations

import os
import time

import pytest
from runtime_helpers import run_to_end

from stackd.errors import SpecError
from stackd.runtime.containerspec import LogConfig, Rlimit

pytestmark = pytest.mark.root


async def test_user_by_name_from_the_containers_passwd(rt, make_spec):
    _, out, _ = await run_to_end(rt, make_spec("proc-user", "id", user="app"))
    # `app` is 1000 in the image's /etc/passwd; wheel and staff list it in /etc/group.
    assert out == "uid=1000(app) gid=1000(app) groups=10(wheel),50(staff),1000(app)"


async def test_user_and_group_by_number_and_extra_groups(rt, make_spec):
    _, out, _ = await run_to_end(rt, make_spec(
        "proc-uid", "id", user="1234:daemon", additional_groups=("staff", "4321")))
    assert out == "uid=1234 gid=1(daemon) groups=1(daemon),50(staff),4321"


async def test_unknown_user_is_a_spec_error(rt, make_spec):
    with pytest.raises(SpecError, match="'nosuchuser' is not in the container's /etc/passwd"):
        await rt.create(make_spec("proc-nouser", "id", user="nosuchuser"))
    assert await rt.list() == []


async def test_env_cwd_and_ulimits_apply(rt, make_spec):
    _, out, _ = await run_to_end(rt, make_spec(
        "proc-env", "sh", "-c", 'echo "$GREETING"; pwd; ulimit -n; ulimit -Hn; echo "$HOME"',
        env=("GREETING=hello there",), cwd="/srv/work", user="app",
        rlimits=(Rlimit(type="nofile", soft=512, hard=1024),)))
    assert out.splitlines() == ["hello there", "/srv/work", "512", "1024", "/home/app"]


async def test_exit_codes_propagate(rt, make_spec):
    exit_status, _, _ = await run_to_end(rt, make_spec("proc-exit", "sh", "-c", "exit 42"))
    assert (exit_status.code, exit_status.signal) == (42, None)


async def test_signals_propagate(rt, make_spec):
    await rt.create(make_spec("proc-sig", "sleep", "30"))
    await rt.start("proc-sig")
    # A PID 1 without handlers ignores SIGTERM from outside; SIGKILL always works.
    await rt.kill("proc-sig", "SIGKILL")
    exit_status = await rt.wait("proc-sig")
    assert (exit_status.code, exit_status.signal, exit_status.oom_killed) == (137, 9, False)
    state = await rt.inspect("proc-sig")
    assert state.status == "exited" and state.exit == exit_status and state.pid is None
    await rt.delete("proc-sig")


async def test_signal_reaches_a_process_that_handles_it(rt, make_spec):
    await rt.create(make_spec(
        "proc-trap", "sh", "-c", "trap 'echo got USR1; exit 3' USR1; echo ready; "
        "while true; do sleep 0.05; done"))
    await rt.start("proc-trap")
    async for rec in rt.logs("proc-trap", follow=True):
        if rec.line == "ready":
            break
    await rt.kill("proc-trap", "USR1")
    assert (await rt.wait("proc-trap")).code == 3
    await rt.delete("proc-trap")


async def test_process_ignoring_sigterm_is_killed_after_the_grace_period(rt, make_spec):
    await rt.create(make_spec("proc-stop", "sh", "-c", "trap '' TERM; sleep 60"))
    await rt.start("proc-stop")
    t0 = time.monotonic()
    exit_status = await rt.stop("proc-stop", grace=0.5)
    elapsed = time.monotonic() - t0
    assert exit_status.signal == 9
    assert 0.5 <= elapsed < 5
    await rt.delete("proc-stop")


async def test_init_reaps_and_forwards_signals(rt, make_spec):
    await rt.create(make_spec("proc-init", "sh", "-c",
                              "trap 'exit 7' TERM; echo ready; while true; do sleep 0.05; done",
                              init=True))
    await rt.start("proc-init")
    async for rec in rt.logs("proc-init", follow=True):
        if rec.line == "ready":
            break
    # With `init`, PID 1 is catatonit, which forwards SIGTERM to the process.
    await rt.kill("proc-init", "SIGTERM")
    assert (await rt.wait("proc-init")).code == 7
    await rt.delete("proc-init")


async def test_missing_executable_fails_start_with_a_clear_error(rt, make_spec):
    await rt.create(make_spec("proc-missing", "/no/such/program"))
    with pytest.raises(SpecError, match="cannot run '/no/such/program'"):
        await rt.start("proc-missing")
    assert (await rt.wait("proc-missing")).code == 127
    await rt.delete("proc-missing")


async def test_log_holds_both_streams_in_order_with_timestamps(rt, make_spec):
    await run_to_end(rt, make_spec(
        "proc-log", "sh", "-c",
        "echo one; sleep 0.05; echo two >&2; sleep 0.05; echo three; sleep 0.05; "
        "printf 'no newline' >&2"), keep=True)
    records = [r async for r in rt.logs("proc-log")]
    assert [(r.stream, r.line) for r in records] == [
        ("stdout", "one"), ("stderr", "two"), ("stdout", "three"), ("stderr", "no newline")]
    times = [r.time for r in records]
    assert times == sorted(times) and times[-1] > times[0]
    # Docker's json-file format on disk.
    import json

    first = json.loads(rt.log_path("proc-log").read_text().splitlines()[0])
    assert first["log"] == "one\n" and first["stream"] == "stdout"
    assert first["time"].endswith("Z") and len(first["time"]) == len("2026-11-27T23:00:00.") + 10
    tail = [r.line async for r in rt.logs("proc-log", tail=2)]
    assert tail == ["three", "no newline"]
    await rt.delete("proc-log")


async def test_log_is_rotated_by_size(rt, make_spec):
    spec = make_spec("proc-rot", "sh", "-c", "for i in $(seq 1 400); do echo line-$i; done",
                     log=LogConfig(max_size=4096, max_files=3))
    await run_to_end(rt, spec, keep=True)
    path = rt.log_path("proc-rot")
    files = sorted(p.name for p in path.parent.glob("log.json*"))
    assert files == ["log.json", "log.json.1", "log.json.2"]
    assert all(p.stat().st_size < 4096 + 200 for p in path.parent.glob("log.json*"))
    lines = [r.line async for r in rt.logs("proc-rot")]
    # The oldest records were rotated away; what is kept is the newest, in order.
    assert lines[-1] == "line-400"
    assert lines == [f"line-{i}" for i in range(401 - len(lines), 401)]
    assert 50 < len(lines) < 400
    await rt.delete("proc-rot")


async def test_a_created_container_holds_none_of_the_monitors_descriptors(rt, make_spec):
    """The first process is forked from the monitor, which holds its socket and every
    other container's pipes, and waits for `start` (for as long as a user likes):
    it must hold none of them meanwhile — another container's output pipe held open
    would never show its end. Others running, so there is something to inherit."""
    for i in range(3):
        await rt.create(make_spec(f"fds-other-{i}", "sleep", "30"))
        await rt.start(f"fds-other-{i}")
    try:
        await rt.create(make_spec("fds-probe", "true"))
        pid = (await rt.inspect("fds-probe")).pid
        held = {int(fd): os.readlink(f"/proc/{pid}/fd/{fd}")
                for fd in os.listdir(f"/proc/{pid}/fd")}
        # Its stdio as the monitor's were, the ready and start pipes, and its own
        # three ends of stdin (/dev/null here), stdout and stderr: nothing else.
        assert len(held) <= 8, held
        assert not [link for link in held.values() if link.startswith("socket:")], held
        await rt.delete("fds-probe", force=True)
    finally:
        for i in range(3):
            await rt.kill(f"fds-other-{i}", "SIGKILL")
            await rt.wait(f"fds-other-{i}")
            await rt.delete(f"fds-other-{i}")


@pytest.mark.parametrize("kind", ["fifo", "dev-zero-link"])
async def test_an_images_etc_passwd_that_is_no_file_is_refused_at_once(
        rt, make_spec, busybox_layer, tmp_path, kind):
    """The child reads the image's /etc/passwd to resolve the user: a FIFO there held
    the create until the 30 s setup timeout, a link to /dev/zero was read until the
    memory ran out (here the container's limit; without one, the host's)."""
    from pathlib import Path

    from stackd.runtime.containerspec import Resources

    layer = Path(tmp_path) / "hostile"
    (layer / "etc").mkdir(parents=True)
    if kind == "fifo":
        os.mkfifo(layer / "etc" / "passwd")
    else:
        os.symlink("/dev/zero", layer / "etc" / "passwd")
    spec = make_spec("hostile-passwd", "true", resources=Resources(memory=64 << 20))
    spec = spec.model_copy(update={"layers": (str(layer), str(busybox_layer))})
    t0 = time.monotonic()
    with pytest.raises(SpecError, match=r"the image's /etc/passwd is not a regular file"):
        await rt.create(spec)
    assert time.monotonic() - t0 < 10
    assert await rt.list() == []


async def test_a_working_directory_nested_past_the_recursion_limit_is_made(rt, make_spec):
    """os.makedirs recursed per level: an image's WORKDIR 1,500 levels deep (or -w)
    ended the start in "stackd: maximum recursion depth exceeded"."""
    deep = "/w" * 1500
    status, out, err = await run_to_end(rt, make_spec("proc-deepwd", "pwd", cwd=deep))
    assert (status.code, out) == (0, deep), err
