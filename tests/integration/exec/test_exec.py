"""exec: a new process in a running container sees what the container sees."""

from __future__ import annotations

import os

import pytest
import trio
from exec_helpers import cancel_exec_once_running

from stackd.errors import ConflictError, SpecError
from stackd.runtime.cgroups import manager_for
from stackd.runtime.exec import exec_detached, exec_in, exec_interactive

pytestmark = pytest.mark.root


async def test_exec_sees_the_containers_hostname_pid_namespace_and_rootfs(running):
    result = await exec_in(running, [
        "sh", "-c", "hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$; "
        "cat /tmp/marker; ls /proc | grep -cE '^[0-9]+$'"])
    assert result.exit_code == 0, result
    hostname, init_cmd, pid, marker, nprocs = result.stdout.decode().splitlines()
    assert hostname == "inside"
    assert init_cmd.strip() == "sleep 300"  # the container's PID 1
    assert 1 < int(pid) < 20
    assert marker == "here"  # written by the container into its own root
    assert int(nprocs) <= 5  # sleep, sh, ls, grep: no host process


async def test_exec_joins_the_same_namespaces(running):
    result = await exec_in(running, ["sh", "-c", "for n in pid mnt net uts ipc cgroup; do "
                                     "readlink /proc/self/ns/$n; done"])
    inside = result.stdout.decode().split()
    outside = [os.readlink(f"/proc/{running.pid}/ns/{n}")
               for n in ("pid", "mnt", "net", "uts", "ipc", "cgroup")]
    assert inside == outside


async def test_exec_runs_as_the_containers_user_unless_overridden(running):
    assert (await exec_in(running, ["id"])).stdout == \
        b"uid=1000(app) gid=1000(app) groups=10(wheel),50(staff),1000(app)\n"
    assert (await exec_in(running, ["id", "-u"], user="root")).stdout == b"0\n"
    assert (await exec_in(running, ["id", "-u"], user="65534")).stdout == b"65534\n"
    with pytest.raises(SpecError, match="user 'ghost' is not in the container's /etc/passwd"):
        await exec_in(running, ["id"], user="ghost")


async def test_exec_gets_the_containers_env_and_workdir_plus_overrides(running):
    result = await exec_in(running, ["sh", "-c", "echo $FOO $SHARED $EXTRA; pwd"],
                           env=["SHARED=exec", "EXTRA=1"])
    assert result.stdout == b"bar exec 1\n/tmp\n"
    result = await exec_in(running, ["pwd"], cwd="/home/app")
    assert result.stdout == b"/home/app\n"


async def test_exec_is_bound_by_the_containers_ulimits(running):
    """An exec'd process had the daemon's limits (here 20000 open files), not the
    container's `ulimits:` — so they bound nothing a `docker exec` started."""
    for user in (None, "root"):
        result = await exec_in(running, ["sh", "-c", "ulimit -n; ulimit -Hn"], user=user)
        assert result.stdout == b"512\n1024\n", result


async def test_exec_is_in_the_containers_cgroup(running, roots):
    result = await exec_in(running, ["cat", "/proc/self/cgroup"])
    # The cgroup namespace's root is the container's cgroup: every line ends in ":/".
    lines = result.stdout.decode().splitlines()
    assert lines and all(line.endswith(":/") for line in lines), lines
    cgroup = manager_for(roots.id, running.id)
    assert len(cgroup.pids()) == 1
    async with trio.open_nursery() as nursery:
        nursery.start_soon(exec_in, running, ["sleep", "1"])
        await trio.sleep(0.5)
        assert len(cgroup.pids()) == 2  # the container's sleep and ours, seen from the host
    assert len(cgroup.pids()) == 1


async def test_exec_has_the_containers_confinement(running):
    status = "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status"
    as_user = (await exec_in(running, ["sh", "-c", status])).stdout.decode()
    assert as_user.split() == ["CapEff:", "0000000000000000", "CapBnd:", "00000000a80425fb",
                               "NoNewPrivs:", "1", "Seccomp:", "2"]
    as_root = (await exec_in(running, ["sh", "-c", status], user="0")).stdout.decode()
    assert as_root.split()[:2] == ["CapEff:", "00000000a80425fb"]
    denied = await exec_in(running, ["unshare", "-U", "true"], user="0")
    assert denied.exit_code != 0 and b"Operation not permitted" in denied.stderr
    # `exec --privileged`: every capability the creator holds, no filter, no NNP.
    free = (await exec_in(running, ["sh", "-c", status], user="0",
                          privileged=True)).stdout.decode().split()
    assert free[free.index("Seccomp:") + 1] == "0" and free[free.index("NoNewPrivs:") + 1] == "0"
    assert int(free[free.index("CapEff:") + 1], 16) & (1 << 21)  # CAP_SYS_ADMIN
    assert (await exec_in(running, ["unshare", "-U", "true"], user="0",
                          privileged=True)).exit_code == 0


async def test_exit_codes_streams_and_stdin(running):
    result = await exec_in(running, ["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert (result.exit_code, result.stdout, result.stderr) == (7, b"out\n", b"err\n")
    assert (await exec_in(running, ["sh", "-c", "kill -9 $$"])).exit_code == 137
    missing = await exec_in(running, ["no-such-program"])
    assert missing.exit_code == 127
    assert b"'no-such-program': no such file" in missing.stderr
    echoed = await exec_in(running, ["cat"], stdin=b"line 1\nline 2\n")
    assert (echoed.exit_code, echoed.stdout) == (0, b"line 1\nline 2\n")


async def test_a_background_child_does_not_hold_exec_open(running):
    with trio.fail_after(5):
        result = await exec_in(running, ["sh", "-c", "sleep 30 & echo started"])
    assert result.stdout == b"started\n"


async def test_exec_with_a_tty_uses_the_containers_devpts(running):
    result = await exec_in(running, ["sh", "-c", "tty; test -t 0 && echo interactive"],
                           tty=True)
    assert result.exit_code == 0
    lines = result.stdout.decode().split("\r\n")
    assert lines[0].startswith("/dev/pts/") and lines[1] == "interactive"
    assert (await exec_in(running, ["sh", "-c", "exit 3"], tty=True)).exit_code == 3


async def test_cancelling_exec_kills_the_process(running, roots):
    await cancel_exec_once_running(running, roots.id)


async def test_exec_into_a_stopped_container_is_a_conflict(rt, running):
    await rt.stop(running.id, grace=0.1)
    with pytest.raises(ConflictError, match="is not running"):
        await exec_in(await rt.inspect(running.id), ["true"])


async def test_interactive_exec_writes_to_our_terminal(running, capfd):
    code = await trio.to_thread.run_sync(
        lambda: exec_interactive(running, ["sh", "-c", "echo to-stdout; echo to-stderr >&2; "
                                           "exit 4"]))
    assert code == 4
    out, err = capfd.readouterr()
    assert (out, err) == ("to-stdout\n", "to-stderr\n")


async def test_interactive_exec_with_tty(running, capfd):
    code = await trio.to_thread.run_sync(
        lambda: exec_interactive(running, ["tty"], tty=True))
    assert code == 0
    assert capfd.readouterr().out.startswith("/dev/pts/")


async def test_exec_without_capture_writes_to_our_stdout(running, capfd):
    result = await exec_in(running, ["sh", "-c", "echo passed-through; exit 2"], capture=False)
    assert (result.exit_code, result.stdout, result.stderr) == (2, b"", b"")
    assert capfd.readouterr().out == "passed-through\n"


async def test_a_detached_exec_returns_once_started_and_runs_on(running, roots, capfd):
    cgroup = manager_for(roots.id, running.id)
    t0 = trio.current_time()
    started = await trio.to_thread.run_sync(lambda: exec_detached(
        running, ["sh", "-c", "echo lost; sleep 1; echo done > /tmp/detached; sleep 30"]))
    assert started == (0, None)
    assert trio.current_time() - t0 < 1  # it did not wait for the command
    assert len(cgroup.pids()) >= 2  # the container's sleep, and our sh (exec'd: started)
    with trio.fail_after(10):
        while (await exec_in(running, ["cat", "/tmp/detached"])).stdout != b"done\n":
            await trio.sleep(0.1)
    assert "lost" not in capfd.readouterr().out  # its output is read by no one
    # A program that is done at once (`exec -d box true`) was started all the same: it
    # used to be taken for one that never ran, depending on which finished first.
    # Eight callers at once, so that a helper is often descheduled right then.
    quick: list[tuple[int, str | None]] = []

    async def caller() -> None:
        quick.extend(await trio.to_thread.run_sync(
            lambda: [exec_detached(running, ["true"]) for _ in range(25)]))

    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(caller)
    assert quick == [(0, None)] * 200
    # What keeps a program from running is said, as an attached exec says it.
    code, why = await trio.to_thread.run_sync(lambda: exec_detached(running, ["no-such"]))
    assert code == 127 and why is not None and "'no-such': no such file" in why
    with pytest.raises(SpecError, match="/no/such/dir"):
        await trio.to_thread.run_sync(lambda: exec_detached(running, ["true"],
                                                            cwd="/no/such/dir"))


async def test_captured_output_is_kept_up_to_a_limit_and_the_command_runs_on(running):
    """A captured exec (the API's, `--host`'s, a health check's) kept all its output in
    the daemon's memory until it ended: `cat /dev/zero` there grew without end."""
    from stackd.runtime.exec import CAPTURE_LIMIT

    result = await exec_in(running, ["sh", "-c", f"head -c {CAPTURE_LIMIT * 3} /dev/zero; "
                                     "echo done >&2"])
    assert result.exit_code == 0  # it wrote everything: the rest was read and dropped
    note = f"\n[stackd: the output went past {CAPTURE_LIMIT >> 20} MiB; the rest was not kept]\n"
    assert result.stdout == b"\0" * CAPTURE_LIMIT + note.encode()
    assert result.stderr == b"done\n"
