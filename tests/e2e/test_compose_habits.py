"""Compose users' habits, end to end with the real daemon and runtime: stdin and TTYs
for exec, `lo` under network_mode none, and the verbs compose users reach for."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_helpers import CLI, DEMO_IMAGE, Terminal, stack_dir, torn_down
from support.psrows import ps_rows

from stackd.daemon.paths import socket_path
from stackd.roots import Roots

pytestmark = [pytest.mark.root, pytest.mark.slow]

STACK = f"""\
name: habits
services:
  box:
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [sleep, "1000"]
    stop_signal: SIGKILL
    volumes: [data:/data]
  alone:
    image: {DEMO_IMAGE}
    pull_policy: never
    network_mode: none
    command: [sleep, "1000"]
    stop_signal: SIGKILL
volumes:
  data: {{}}
"""


@pytest.fixture
def stack(no_leaks: Roots, demo_image: str, tmp_path: Path) -> Iterator[CLI]:
    work = tmp_path / "habits"
    work.mkdir()
    (work / "compose.yaml").write_text(STACK)
    with torn_down(CLI(no_leaks, work)) as cli:
        cli("up", "-d")
        yield cli


def piped(cli: CLI, stdin: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "stackd", *args], cwd=cli.cwd,
                          env=cli.env(), input=stdin, capture_output=True, timeout=60)


def test_exec_forwards_stdin_without_a_tty(stack: CLI) -> None:
    r = piped(stack, b"hi\n", "exec", "-T", "box", "cat")
    assert (r.returncode, r.stdout) == (0, b"hi\n"), r.stderr
    # The default (no -T) with a pipe for stdin is the same: no TTY to relay to.
    r = piped(stack, b"line one\nline two\n", "exec", "box", "wc", "-l")
    assert r.stdout.strip() == b"2", r.stderr
    # stdin's EOF is the process's EOF; its exit code is ours.
    r = piped(stack, b"", "exec", "-T", "box", "sh", "-c", "cat; exit 4")
    assert (r.returncode, r.stdout) == (4, b"")


def test_exec_it_gets_a_pty_that_follows_the_window_size(stack: CLI) -> None:
    term = Terminal(stack, "exec", "-it", "box", "sh", "-c",
                    "tty; stty size; echo ready; read x; stty size; echo done",
                    rows=31, cols=97)
    try:
        out = term.read_until(b"ready")
        assert b"/dev/pts/" in out and b"31 97" in out, out
        term.resize(40, 120)
        time.sleep(0.5)  # SIGWINCH reaches the CLI, which passes the size on
        os.write(term.master, b"\n")
        out = term.read_until(b"done")
        assert b"40 120" in out, out
    finally:
        code = term.close()
    assert code == 0, term.output


def test_exec_tty_passes_ctrl_c_and_ctrl_d_to_the_process(stack: CLI) -> None:
    term = Terminal(stack, "exec", "-it", "box", "sh", "-c",
                    "trap 'echo got-int' INT; echo ready; while read x; do :; done; "
                    "echo eof; exit 5", rows=24, cols=80)
    try:
        term.read_until(b"ready")
        os.write(term.master, b"\x03")  # Ctrl-C: SIGINT to the process, not to us
        term.read_until(b"got-int")
        os.write(term.master, b"\x04")  # Ctrl-D: EOF to its read
        term.read_until(b"eof")
    finally:
        code = term.close()
    assert code == 5, term.output


def helpers_running(marker: str) -> list[int]:
    """Host processes whose command line holds `marker` (an exec -d's helper is the
    CLI's fork: its command line is the CLI's)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline and b"stackd" in cmdline and b"exec" in cmdline:
            found.append(int(pid))
    return found


def test_exec_detached_returns_at_once_and_the_command_runs_on(stack: CLI) -> None:
    marker = f"sleep 31.{os.getpid()}"
    t0 = time.monotonic()
    r = stack("exec", "-d", "box", "sh", "-c", f"touch /tmp/began; echo lost; {marker}")
    assert time.monotonic() - t0 < 15 and (r.returncode, r.stdout) == (0, "")
    deadline = time.monotonic() + 10
    while stack("exec", "-T", "box", "test", "-e", "/tmp/began", check=False).returncode:
        assert time.monotonic() < deadline, "the detached command never ran"
        time.sleep(0.1)
    ps = stack("exec", "-T", "box", "ps", "-o", "args").stdout
    assert marker in ps, ps  # still running after our exec -d returned
    assert helpers_running(marker)  # its helper waits for it on the host
    missing = stack("exec", "-d", "box", "no-such-program", check=False)
    assert missing.returncode == 127 and "no-such-program" in missing.stderr
    both = stack("exec", "-d", "-t", "box", "true", check=False)
    assert both.returncode == 2 and "not with -t" in both.stderr
    # `exec --privileged`: no seccomp filter for that command alone.
    seccomp = "grep Seccomp: /proc/self/status"
    assert stack("exec", "-T", "--privileged", "box", "sh", "-c", seccomp).stdout.split() \
        == ["Seccomp:", "0"]
    assert stack("exec", "-T", "box", "sh", "-c", seccomp).stdout.split() == ["Seccomp:", "2"]
    # Over the API (what `--host` uses): answered once it runs, as the CLI's.
    (name,) = [r["name"] for r in ps_rows(stack("ps", "--format", "json").stdout)
               if r["service"] == "box"]
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(socket_path(stack.roots))),
                      base_url="http://stackd", timeout=60) as api:
        r = api.post(f"/v1/containers/{name}/exec", json={
            "cmd": ["sh", "-c", "sleep 0.5; touch /tmp/by-api; sleep 30"], "detach": True})
        assert r.status_code == 200 and r.json()["exit_code"] == 0, r.text
        missing = api.post(f"/v1/containers/{name}/exec",
                           json={"cmd": ["no-such-program"], "detach": True}).json()
        assert missing["exit_code"] == 127 and "no-such-program" in missing["stderr"]
    deadline = time.monotonic() + 10
    while stack("exec", "-T", "box", "test", "-e", "/tmp/by-api", check=False).returncode:
        assert time.monotonic() < deadline, "the API's detached command never ran"
        time.sleep(0.1)
    stack("stop", "box")  # the command ends with its container, and so does its helper
    deadline = time.monotonic() + 10
    while helpers_running(marker):
        assert time.monotonic() < deadline, "the exec helper outlived the container"
        time.sleep(0.1)


def lo_flags(cli: CLI, *argv: str) -> int:
    r = cli(*argv, "cat", "/sys/class/net/lo/flags")
    return int(r.stdout.strip(), 16)


def test_lo_is_up_under_network_mode_none_and_run_network_none(stack: CLI) -> None:
    iff_up = 0x1
    assert lo_flags(stack, "exec", "-T", "alone") & iff_up
    # Loopback answers: a server on 127.0.0.1 reached from the same container.
    r = stack("exec", "-T", "alone", "sh", "-c",
              "nc -l -p 7000 -e echo pong & sleep 0.3; nc 127.0.0.1 7000 </dev/null")
    assert "pong" in r.stdout, r.stderr
    image_run = CLI(stack.roots, stack.cwd.parent)  # no stack file: docker run
    assert lo_flags(image_run, "run", "--rm", "--network", "none", DEMO_IMAGE) & iff_up


def test_logs_of_a_service_that_does_not_exist_says_so(stack: CLI) -> None:
    r = stack("logs", "nosuch", check=False)
    assert r.returncode == 1, r
    assert "no such service: nosuch in project habits" in r.stderr, r.stderr
    assert "alone, box" in r.stderr, r.stderr
    stack("logs", "box")  # a real one still works
    r = stack("exec", "-T", "nosuch", "true", check=False)  # exec says the same
    assert r.returncode == 1 and "no such service: nosuch" in r.stderr, r.stderr
    stack("stop", "alone")
    r = stack("exec", "-T", "alone", "true", check=False)  # a real one, not running
    assert r.returncode == 1 and "no running container habits-alone-1" in r.stderr


def test_ls_lists_the_stack_with_its_status_and_files(stack: CLI) -> None:
    out = stack("ls").stdout.splitlines()
    assert out[0].split() == ["NAME", "STATUS", "CONFIG", "FILES"], out
    row = next(line for line in out if line.startswith("habits "))
    assert "running(2)" in row and str(stack.cwd / "compose.yaml") in row, out
    (entry,) = [r for r in json.loads(stack("ls", "--format", "json").stdout)
                if r["name"] == "habits"]
    assert entry["files"] == [str(stack.cwd / "compose.yaml")], entry
    # Compose's names too (`docker compose ls --format json`).
    assert (entry["Name"], entry["Status"], entry["ConfigFiles"]) == (
        "habits", "running(2)", str(stack.cwd / "compose.yaml")), entry
    stack("stop")
    assert "exited(2)" in stack("ls", "-a").stdout  # still desired: shown either way
    assert stack("ls", "-q").stdout.split() == ["habits"]
    # The files $COMPOSE_FILE named, not those discovery would find (was compose.yaml).
    (stack.cwd / "other.yaml").write_text(STACK.replace("  alone:", "  lone:"))
    stack("up", "-d", "lone", COMPOSE_FILE="other.yaml", COMPOSE_PROJECT_NAME="other")
    try:
        (entry,) = [r for r in json.loads(stack("ls", "--format", "json").stdout)
                    if r["name"] == "other"]
        assert entry["files"] == [str(stack.cwd / "other.yaml")], entry
    finally:
        stack("down", "-v", COMPOSE_FILE="other.yaml", COMPOSE_PROJECT_NAME="other")


def test_version_names_client_and_daemon(stack: CLI) -> None:
    from stackd import __version__

    out = stack("version").stdout
    assert f"stackd client: {__version__}" in out, out
    daemon = json.loads(stack("version", "--format", "json").stdout)["daemon"]
    assert daemon["pid"] == stack.daemon_pid() and daemon["version"] == __version__


def volumes(cli: CLI) -> dict[str, dict]:
    return {v["name"]: v for v in json.loads(cli("volume", "ls", "--format", "json").stdout)}


def test_volume_ls_inspect_create_rm_prune(stack: CLI) -> None:
    rows = volumes(stack)
    assert rows["habits_data"]["containers"] == ["habits-box-1"], rows
    assert rows["habits_data"]["project"] == "habits"
    assert "habits_data" in stack("volume", "ls").stdout

    assert stack("volume", "create", "scratch").stdout.strip() == "scratch"
    (info,) = json.loads(stack("volume", "inspect", "scratch").stdout)
    mountpoint = Path(info["mountpoint"])
    assert mountpoint.is_dir() and info["containers"] == [], info
    (mountpoint / "kept").write_text("x")
    stack("volume", "create", "scratch")  # again: it exists, nothing lost
    assert (mountpoint / "kept").read_text() == "x"

    # In use: refused, with the container named; the data stays.
    r = stack("volume", "rm", "habits_data", check=False)
    assert r.returncode == 1 and "in use by habits-box-1" in r.stderr, r.stderr
    assert "habits_data" in volumes(stack)
    r = stack("volume", "rm", "nosuch", check=False)
    assert r.returncode == 1 and "no volume 'nosuch'" in r.stderr, r.stderr
    r = stack("volume", "rm", "../..", check=False)
    assert r.returncode == 2 and "not valid" in r.stderr, r.stderr

    assert stack("volume", "rm", "scratch").stdout.strip() == "scratch"
    assert not mountpoint.exists() and "scratch" not in volumes(stack)

    stack("volume", "create", "unused")
    r = stack("volume", "prune", check=False)  # no terminal to ask on: -f needed
    assert r.returncode == 2 and "-f" in r.stderr and "unused" in volumes(stack)
    # Docker's prune (since 23.0): anonymous volumes only; a named one needs -a.
    assert stack("volume", "prune", "-f").stdout == ""
    assert "unused" in volumes(stack)
    out = stack("volume", "prune", "-f", "-a").stdout
    assert "unused" in out and "habits_data" not in out, out
    assert set(volumes(stack)) == {"habits_data"}


def test_volumes_lists_the_stacks_volumes_and_those_a_service_mounts(stack: CLI) -> None:
    """Compose's `volumes`: the stack's, as DRIVER and VOLUME NAME; a service's alone;
    not another's (`scratch` is no stack's)."""
    stack("volume", "create", "scratch")
    out = stack("volumes").stdout.splitlines()
    assert out[0].split() == ["DRIVER", "VOLUME", "NAME"] and out[1].split() == [
        "local", "habits_data"], out
    assert len(out) == 2, out
    assert stack("volumes", "-q", "box").stdout == "habits_data\n"
    assert stack("volumes", "-q", "alone").stdout == ""
    (row,) = ps_rows(stack("volumes", "--format", "json").stdout)  # an object per line
    assert (row["driver"], row["name"], row["containers"]) == (
        "local", "habits_data", ["habits-box-1"])
    assert (row["Driver"], row["Name"]) == ("local", "habits_data")  # Docker's names
    r = stack("volumes", "nosuch", check=False)
    assert r.returncode == 1 and "no such service: nosuch" in r.stderr, r.stderr
    stack("volume", "rm", "scratch")


def test_cp_both_ways_files_and_directories(stack: CLI, tmp_path: Path) -> None:
    stack("exec", "-T", "box", "sh", "-c",
          "mkdir -p /srv/tree/sub && echo one > /srv/tree/a && echo two > /srv/tree/sub/b "
          "&& ln -s a /srv/tree/link && chmod 640 /srv/tree/a && echo vol > /data/v")
    out = tmp_path / "out"
    out.mkdir()
    stack("cp", "box:/etc/hosts", str(out / "hosts"))
    assert (out / "hosts").read_text() == stack("exec", "-T", "box", "cat", "/etc/hosts").stdout
    stack("cp", "box:/srv/tree", str(out))  # into an existing directory
    assert (out / "tree" / "a").read_text() == "one\n"
    assert (out / "tree" / "sub" / "b").read_text() == "two\n"
    assert os.readlink(out / "tree" / "link") == "a"
    assert (out / "tree" / "a").stat().st_mode & 0o777 == 0o640
    stack("cp", "box:/data/v", str(out / "v"))  # a volume: the container's view
    assert (out / "v").read_text() == "vol\n"

    src = tmp_path / "in"
    (src / "deep").mkdir(parents=True)
    (src / "deep" / "f").write_text("from host\n")
    (src / "top").write_text("top\n")
    stack("cp", str(src / "top"), "box:/srv/renamed")
    stack("cp", str(src), "box:/srv/")
    r = stack("exec", "-T", "box", "sh", "-c", "cat /srv/renamed /srv/in/top /srv/in/deep/f")
    assert r.stdout == "top\ntop\nfrom host\n"

    r = stack("cp", "box:/nosuch", str(out), check=False)
    assert r.returncode == 1 and "no such file in the container: /nosuch" in r.stderr
    r = stack("cp", str(src / "top"), str(out), check=False)
    assert r.returncode == 2 and "exactly one side" in r.stderr
    r = stack("cp", "nosvc:/etc/hostname", str(out), check=False)
    assert r.returncode == 1 and "no container habits-nosvc-1" in r.stderr
    # Onto a device node (a null device's numbers, made here) or a FIFO: refused, the
    # node untouched. It wrote into the device and gave it the file's mode 0644.
    null = out / "null"
    os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.chmod(null, 0o666)
    os.mkfifo(out / "pipe", 0o600)
    for special in (null, out / "pipe"):
        r = stack("cp", "box:/etc/hosts", str(special), check=False, timeout=30)
        assert r.returncode == 2 and "not a file or a directory" in r.stderr, r.stderr
    assert stat.S_IMODE(null.stat().st_mode) == 0o666


@pytest.fixture
def bare(no_leaks: Roots, demo_image: str, tmp_path: Path) -> Iterator[CLI]:
    """The CLI where no stack file is in play: `run` is docker's, by image."""
    work = tmp_path / "bare"
    work.mkdir()
    with torn_down(CLI(no_leaks, work)) as cli:
        try:
            yield cli
        finally:
            names = cli("container", "ls", "-a", "-q", check=False).stdout.split()
            if names:
                cli("container", "rm", "-f", *names, check=False)


def test_container_verbs_by_name_and_id_without_a_stack_file(bare: CLI) -> None:
    # --init: PID 1 forwards SIGTERM, so stop and kill -s TERM end it at once.
    bare("run", "-d", "--init", "--name", "solo", DEMO_IMAGE, "sh", "-c",
         "echo started; exec sleep 1000")
    rows = {r["name"]: r for r in json.loads(bare("container", "ls", "--format", "json").stdout)}
    assert rows["solo"]["state"] == "running", rows
    cid = rows["solo"]["id"]
    assert "solo" in bare("container", "ls").stdout

    (info,) = json.loads(bare("container", "inspect", cid).stdout)
    assert (info["name"], info["status"]) == ("solo", "running")
    assert info["spec"]["process"]["args"][-1] == "echo started; exec sleep 1000"

    r = piped(bare, b"to solo\n", "container", "exec", "-T", "solo", "cat")
    assert r.stdout == b"to solo\n", r.stderr
    assert bare("container", "exec", cid, "hostname").returncode == 0
    assert bare("container", "logs", "solo").stdout == "started\n"

    r = bare("container", "rm", "solo", check=False)
    assert r.returncode == 1 and "container solo is running" in r.stderr
    bare("container", "kill", "-s", "TERM", "solo")
    wait_state(bare, "solo", "exited")
    bare("container", "start", "solo")
    wait_state(bare, "solo", "running")
    bare("container", "stop", "solo")
    wait_state(bare, "solo", "exited")
    assert bare("container", "rm", "solo").stdout.strip() == "solo"
    assert bare("container", "ls", "-a", "-q").stdout.split() == []

    for argv in (("logs", "nosuch"), ("inspect", "nosuch"), ("rm", "nosuch")):
        r = bare("container", *argv, check=False)
        assert r.returncode == 1 and "no container 'nosuch'" in r.stderr, (argv, r.stderr)


def wait_state(cli: CLI, name: str, state: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = json.loads(cli("container", "ls", "-a", "--format", "json").stdout)
        if any(r["name"] == name and r["state"] == state for r in rows):
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} never became {state}: {rows}")


def test_run_i_forwards_stdin_of_an_image_run(bare: CLI) -> None:
    r = piped(bare, b"hi\n", "run", "-i", "--rm", DEMO_IMAGE, "cat")
    assert (r.returncode, r.stdout) == (0, b"hi\n"), r.stderr
    r = piped(bare, b"a\nb\nc\n", "run", "-i", "--rm", DEMO_IMAGE, "sh", "-c",
              "wc -l; exit 6")
    assert (r.returncode, r.stdout.strip()) == (6, b"3"), r.stderr
    assert bare("container", "ls", "-a", "-q").stdout.split() == []  # --rm held


def test_run_it_gets_a_pty_of_the_terminal_size_that_follows_it(bare: CLI) -> None:
    term = Terminal(bare, "run", "-it", "--rm", DEMO_IMAGE, "sh", "-c",
                    "tty; stty size; echo ready; read x; echo got=$x; stty size; exit 3",
                    rows=33, cols=101)
    try:
        out = term.read_until(b"ready")
        assert b"/dev/pts/" in out and b"33 101" in out, out
        term.resize(50, 132)
        time.sleep(0.5)
        os.write(term.master, b"abc\n")
        out = term.read_until(b"50 132")
        assert b"got=abc" in out, out
    finally:
        code = term.close()
    assert code == 3, term.output



def test_down_v_of_a_stack_already_down_removes_its_volumes(stack: CLI) -> None:
    stack("down")
    assert "habits_data" in volumes(stack)  # down keeps volumes, as compose's does
    r = stack("down", "-v")
    assert "habits_data" in r.stderr + r.stdout, r
    assert "habits_data" not in volumes(stack)
    r = stack("down", "-v")  # nothing left at all: said so, and no failure (compose's)
    assert "no resource found to remove for project 'habits'" in r.stderr, r.stderr


def test_stats_no_stream_json_and_live_table(stack: CLI) -> None:
    # box burns a core for a while; alone sleeps.
    stack("exec", "-T", "box", "sh", "-c", "(timeout 20 sh -c 'while :; do :; done') "
          ">/dev/null 2>&1 &")
    stack("exec", "-T", "box", "nslookup", "box")  # traffic on its network: NET I/O
    data = {r["name"]: r for r in ps_rows(
        stack("stats", "--no-stream", "--format", "json").stdout)}
    assert set(data) == {"habits-box-1", "habits-alone-1"}, data
    assert data["habits-box-1"]["CPUPerc"].endswith("%")  # Docker's names too
    # A busy loop on a shared machine: well above an idle sleep, whatever else runs.
    assert data["habits-box-1"]["cpu_percent"] > 5, data
    assert data["habits-alone-1"]["cpu_percent"] < data["habits-box-1"]["cpu_percent"], data
    assert data["habits-box-1"]["pids"] >= 2 and data["habits-box-1"]["memory_bytes"] > 0
    out = stack("stats", "--no-stream", "box").stdout.splitlines()
    assert out[0].split() == ["NAME", "CPU", "%", "MEM", "USAGE", "/", "LIMIT", "MEM", "%",
                              "NET", "I/O", "BLOCK", "I/O", "PIDS"], out
    box = data["habits-box-1"]
    assert box["net_tx"] > 0 and box["net_rx"] > 0, box  # the DNS question and answer
    alone = data["habits-alone-1"]  # network_mode: none: loopback only, not counted
    assert (alone["net_rx"], alone["net_tx"], alone["NetIO"]) == (0, 0, "0B / 0B"), alone
    assert box["NetIO"].count(" / ") == 1 and box["BlockIO"].endswith("B"), box
    limits = {r["name"]: r["memory_limit"] for r in data.values()}
    assert limits["habits-box-1"] > 2**30, limits  # no limit: the host's memory, as Docker
    assert [line.split()[0] for line in out[1:]] == ["habits-box-1"], out
    # Live: a new table every second until interrupted.
    live = subprocess.Popen([sys.executable, "-m", "stackd", "stats"], cwd=stack.cwd,
                            env=stack.env(), stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(3.5)
    finally:
        live.terminate()
        text = live.communicate(timeout=10)[0]
    assert text.count("NAME") >= 2, text
    r = stack("stats", "--no-stream", "nosuch", check=False)
    assert r.returncode == 1 and "no running container of nosuch" in r.stderr
    # -a (Compose's): a stopped container too, at zero; without it, not at all.
    stack("stop", "alone")
    data = {r["name"]: r for r in ps_rows(
        stack("stats", "-a", "--no-stream", "--format", "json").stdout)}
    assert set(data) == {"habits-box-1", "habits-alone-1"}, data
    assert (data["habits-alone-1"]["cpu_percent"], data["habits-alone-1"]["pids"]) == (0, 0)
    assert [r["name"] for r in ps_rows(
        stack("stats", "--no-stream", "--format", "json").stdout)] == ["habits-box-1"]


def wait_for(check: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def counter(mountpoint: Path) -> int:
    try:
        return int((mountpoint / "n").read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def test_pause_freezes_and_unpause_thaws(stack: CLI) -> None:
    (info,) = json.loads(stack("volume", "inspect", "habits_data").stdout)
    data = Path(info["mountpoint"])
    stack("exec", "-T", "box", "sh", "-c",
          "(n=0; while :; do n=$((n+1)); echo $n > /data/n; sleep 0.05; done) "
          ">/dev/null 2>&1 &")
    wait_for(lambda: counter(data) > 0)
    assert stack("pause", "box").stdout.split() == ["habits-box-1"]
    frozen_at = counter(data)
    time.sleep(1.5)
    assert counter(data) == frozen_at, "the counter ran on while paused"
    stack("unpause", "box")
    wait_for(lambda: counter(data) > frozen_at + 3)
    # A paused container is still ended by a stop or down (SIGKILL thaws it).
    stack("pause")
    stack("stop", "box")
    rows = {r["name"]: r for r in ps_rows(stack("ps", "-a", "--format", "json").stdout)}
    assert rows["habits-box-1"]["state"] == "exited", rows
    stack("unpause", "alone")
    r = stack("pause", "nosuch", check=False)
    assert r.returncode == 1 and "no running container of nosuch" in r.stderr
    # One named service with no running container does not stop the others' pause
    # (it paused nothing: "no running container of box"), as Compose's.
    stack("pause", "box", "alone")
    rows = {r["name"]: r for r in ps_rows(stack("ps", "-a", "--format", "json").stdout)}
    assert rows["habits-alone-1"].get("paused") is True, rows
    # A verb that would change nothing says so, as Docker's "is already paused"; it
    # used to print the name and exit 0.
    again = stack("pause", "alone", check=False)
    assert again.returncode == 1, again
    assert "has no unpaused container of alone" in again.stderr, again.stderr
    stack("unpause", "box", "alone")
    again = stack("unpause", check=False)
    assert again.returncode == 1 and "has no paused container" in again.stderr, again
    # Docker's single-container form, by name.
    assert stack("container", "pause", "habits-alone-1").stdout == "habits-alone-1\n"
    twice = stack("container", "pause", "habits-alone-1", check=False)
    assert twice.returncode == 1, twice
    assert "container habits-alone-1 is already paused" in twice.stderr, twice.stderr
    rows = {r["name"]: r for r in ps_rows(stack("ps", "-a", "--format", "json").stdout)}
    assert rows["habits-alone-1"].get("paused") is True, rows
    stack("container", "unpause", "habits-alone-1")
    thawed = stack("container", "unpause", "habits-alone-1", check=False)
    assert thawed.returncode == 1, thawed
    assert "container habits-alone-1 is not paused" in thawed.stderr, thawed.stderr
    assert stack("exec", "-T", "alone", "echo", "thawed").stdout == "thawed\n"


def test_images_stack_lists_the_image_of_each_container(stack: CLI) -> None:
    rows = json.loads(stack("images", "--stack", "--format", "json").stdout)
    assert [r["container"] for r in rows] == ["habits-alone-1", "habits-box-1"], rows
    assert all(r["image"].endswith(DEMO_IMAGE) for r in rows), rows
    assert all(r["id"].startswith("sha256:") and r["size"] > 0 for r in rows), rows
    out = stack("images", "--stack").stdout.splitlines()
    assert out[0].split() == ["CONTAINER", "REPOSITORY", "TAG", "PLATFORM", "IMAGE", "ID",
                              "SIZE", "CREATED"], out  # Compose's
    assert len(out) == 3
    box = next(line for line in out if line.startswith("habits-box-1 ")).split()
    assert box[1:4] == [DEMO_IMAGE.rsplit(":", 1)[0], DEMO_IMAGE.rsplit(":", 1)[1],
                        "linux/amd64"] and box[-1] == "ago", box
    # Plain `images` is still the whole store (docker's).
    assert "REPOSITORY" in stack("images").stdout


def test_a_tty_service_gets_a_pty_of_its_own_devpts(no_leaks: Roots, demo_image: str,
                                                   tmp_path: Path) -> None:
    """`tty: true`: PID 1's terminal is a pty of the container's devpts, so `tty` names
    it and `stty` works (a pty of the host's devpts read as "not a tty" inside)."""
    work = tmp_path / "ttysvc"
    work.mkdir()
    (work / "compose.yaml").write_text(
        f"name: ttysvc\nservices:\n  t:\n    image: {DEMO_IMAGE}\n    pull_policy: never\n"
        "    tty: true\n    stop_signal: SIGKILL\n"
        "    command: [sh, -c, 'tty; stty size && echo stty-ok; echo done; sleep 1000']\n")
    with torn_down(CLI(no_leaks, work)) as cli:
        cli("up", "-d")
        deadline = time.monotonic() + 20
        while "done" not in (out := cli("logs", "--no-log-prefix").stdout):
            assert time.monotonic() < deadline, out
            time.sleep(0.2)
        lines = [line.strip() for line in out.splitlines()]
        assert lines[0].startswith("/dev/pts/"), out
        assert "stty-ok" in lines, out



def test_run_it_of_a_service_takes_ctrl_c_and_ctrl_d(stack: CLI) -> None:
    term = Terminal(stack, "run", "-it", "--rm", "--no-deps", "box", "sh", "-c",
                    "trap 'echo got-int' INT; tty; echo ready; while read x; do :; done; "
                    "echo eof; exit 5", rows=24, cols=80)
    try:
        term.read_until(b"ready")
        assert b"/dev/pts/" in term.output, term.output
        os.write(term.master, b"\x03")
        term.read_until(b"got-int")
        os.write(term.master, b"\x04")
        term.read_until(b"eof")
    finally:
        code = term.close()
    assert code == 5, term.output


ATTACHABLE = f"""\
services:
  catter:
    image: {DEMO_IMAGE}
    pull_policy: never
    restart: "no"
    stdin_open: true
    command: [cat]
  console:
    image: {DEMO_IMAGE}
    pull_policy: never
    stdin_open: true
    tty: true
    stop_signal: SIGKILL
    command: [sh, -c, "echo ready; while read x; do echo got-$$x; done"]
"""


def test_attach_forwards_stdin_to_a_stdin_open_service(stack: CLI) -> None:
    (stack.cwd / "compose.override.yaml").write_text(ATTACHABLE)
    stack("up", "-d", "catter")
    r = piped(stack, b"hi\n", "attach", "catter")
    assert (r.returncode, r.stdout) == (0, b"hi\n"), r  # cat's echo, then our EOF is its


def test_attach_to_a_tty_service_and_detach_with_ctrl_p_ctrl_q(stack: CLI) -> None:
    (stack.cwd / "compose.override.yaml").write_text(ATTACHABLE)
    stack("up", "-d", "console")
    term = Terminal(stack, "attach", "console", rows=24, cols=80)
    try:
        term.read_until(b"ready")  # printed before the attach: kept for the first one
        os.write(term.master, b"abc\r")
        term.read_until(b"got-abc")
        os.write(term.master, b"\x10\x11")
    finally:
        code = term.close()
    assert code == 0, term.output
    rows = ps_rows(stack("ps", "--format", "json", "console").stdout)
    assert [r["state"] for r in rows] == ["running"], rows


def test_attach_detaches_with_the_keys_given(stack: CLI) -> None:
    (stack.cwd / "compose.override.yaml").write_text(ATTACHABLE)
    stack("up", "-d", "console")
    term = Terminal(stack, "attach", "--detach-keys", "ctrl-x,x", "console", rows=24, cols=80)
    try:
        term.read_until(b"ready")
        os.write(term.master, b"\x10\x11abc\r")  # Docker's keys are text now
        term.read_until(b"got-")
        os.write(term.master, b"\x18x")
    finally:
        code = term.close()
    assert code == 0, term.output
    assert [r["state"] for r in ps_rows(
        stack("ps", "--format", "json", "console").stdout)] == ["running"]
    r = stack("attach", "--detach-keys", "alt-x", "console", check=False)
    assert r.returncode == 2 and "'alt-x' is not a key" in r.stderr, r.stderr


TRAPPER = f"""\
services:
  trapper:
    image: {DEMO_IMAGE}
    pull_policy: never
    restart: "no"
    command: [sh, -c, "trap 'echo got-int; exit 3' INT; echo ready; while true; do sleep 0.1; done"]
"""


@pytest.mark.parametrize("proxy", [True, False], ids=["sig-proxy", "no-sig-proxy"])
def test_ctrl_c_on_attach_goes_to_the_container_unless_no_sig_proxy(
        stack: CLI, proxy: bool) -> None:
    import signal

    (stack.cwd / "compose.override.yaml").write_text(TRAPPER)
    stack("up", "-d", "trapper")
    args = ["attach", "trapper"] + ([] if proxy else ["--no-sig-proxy"])
    proc = subprocess.Popen([sys.executable, "-m", "stackd", *args], cwd=stack.cwd,
                            env=stack.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(1.5)  # following the output
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    state = ps_rows(stack("ps", "-a", "--format", "json", "trapper").stdout)[0]
    if proxy:  # the container had the SIGINT: it said so and exited 3, attach with it
        assert (proc.returncode, state["state"], state["exit_code"]) == (3, "exited", 3)
        assert b"got-int" in out
    else:  # detached: the container runs on
        assert (proc.returncode, state["state"]) == (0, "running")


def test_a_second_ctrl_c_detaches_from_a_container_that_ignores_the_first(
        stack: CLI) -> None:
    import signal

    (stack.cwd / "compose.override.yaml").write_text(
        TRAPPER.replace("trap 'echo got-int; exit 3' INT", "trap '' INT"))
    stack("up", "-d", "trapper")
    proc = subprocess.Popen([sys.executable, "-m", "stackd", "attach", "trapper"],
                            cwd=stack.cwd, env=stack.env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        time.sleep(1.5)
        proc.send_signal(signal.SIGINT)  # proxied: ignored in there
        time.sleep(0.3)
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)  # again at once: detach
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    state = ps_rows(stack("ps", "--format", "json", "trapper").stdout)[0]
    assert state["state"] == "running"


def test_top_lists_each_running_containers_processes_as_ps_ef_does(stack: CLI) -> None:
    stack("exec", "-T", "box", "sh", "-c", "sleep 1001 >/dev/null 2>&1 &")
    pids = {r["name"]: r["pid"] for r in ps_rows(stack("ps", "--format", "json").stdout)}
    blocks = [b.splitlines() for b in stack("top").stdout.strip().split("\n\n")]
    assert [b[0] for b in blocks] == ["habits-alone-1", "habits-box-1"], blocks
    for block in blocks:
        assert block[1].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    box = {row.split(None, 7)[7]: row.split(None, 7) for row in blocks[1][2:]}
    assert set(box) == {"sleep 1000", "sleep 1001"}, blocks[1]
    # Host PIDs, as Docker's: the container's first process is the one `ps` names, and
    # the orphaned `sleep 1001` was adopted by it (its PID namespace's init).
    assert int(box["sleep 1000"][1]) == pids["habits-box-1"]
    assert int(box["sleep 1001"][2]) == pids["habits-box-1"]
    assert box["sleep 1000"][0] == "root" and box["sleep 1000"][5] == "?"
    assert stack("top", "alone").stdout.splitlines()[0] == "habits-alone-1"
    r = stack("top", "nosuch", check=False)
    assert r.returncode == 1 and "no running container of nosuch" in r.stderr
    stack("stop", "alone")
    assert stack("top").stdout.splitlines()[0] == "habits-box-1"  # running ones only


def test_logs_since_and_until_keep_the_lines_of_their_window(
        no_leaks: Roots, demo_image: str, tmp_path: Path) -> None:
    from datetime import datetime, timedelta

    work = tmp_path / "talk"
    work.mkdir()
    (work / "compose.yaml").write_text(f"""\
name: talk
services:
  talker:
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [sh, -c, "echo one; sleep 1.5; echo two; exec sleep 1000"]
    stop_signal: SIGKILL
""")
    with torn_down(CLI(no_leaks, work)) as cli:
        cli("up", "-d")
        wait_for(lambda: "two" in cli("logs", "--no-log-prefix").stdout)
        stamped = dict(reversed(line.split(" ", 1)) for line in
                       cli("logs", "-t", "--no-log-prefix").stdout.splitlines())
        one, two = (datetime.fromisoformat(stamped[w]) for w in ("one", "two"))
        # As `docker logs -t` writes them (RFC 3339 in UTC with a Z; was "+00:00").
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", t)
                   for t in stamped.values()), stamped
        middle = (one + (two - one) / 2).isoformat()
        assert cli("logs", "--no-log-prefix", "--since", middle).stdout == "two\n"
        assert cli("logs", "--no-log-prefix", "--until", middle).stdout == "one\n"
        assert cli("logs", "--no-log-prefix", "--since", "1h").stdout == "one\ntwo\n"
        epoch = str((two + timedelta(seconds=1)).timestamp())
        assert cli("logs", "--no-log-prefix", "--since", epoch).stdout == ""
        r = cli("logs", "--since", "yesterday", check=False)
        assert r.returncode == 2 and "'yesterday' is not a time" in r.stderr


def test_logs_index_picks_one_replica(no_leaks: Roots, demo_image: str,
                                      tmp_path: Path) -> None:
    with stack_dir(no_leaks, tmp_path, "reps", f"""\
name: reps
services:
  web:
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [sh, -c, "echo I am $$HOSTNAME; exec sleep 1000"]
    stop_signal: SIGKILL
    deploy: {{replicas: 2}}
""") as cli:
        cli("up", "-d")
        wait_for(lambda: cli("logs", "web").stdout.count("I am") == 2)
        out = cli("logs", "--index", "2", "web").stdout
        assert out.splitlines() == ["reps-web-2  | I am reps-web-2"], out
        r = cli("logs", "--index", "2", check=False)
        assert r.returncode == 2 and "--index picks a replica" in r.stderr


def test_peers_find_each_other_by_name_before_either_is_healthy(
        no_leaks: Roots, demo_image: str, tmp_path: Path) -> None:
    """Docker's DNS answers a running container whatever its health. stackd's left a
    container out until healthy, so members of a cluster whose health needs the
    others (here: each is healthy once it resolves its peer) never became healthy."""
    peer = f"""\
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [sleep, "1000"]
    stop_signal: SIGKILL
    healthcheck: {{test: [CMD, nslookup, "{{}}"], interval: 1s, retries: 30}}
"""
    # Two finds one by its hostname (Docker 20.10's alias), and by a link's alias.
    with stack_dir(no_leaks, tmp_path, "peers", "name: peers\nservices:\n"
                   + "  one:\n    hostname: first\n" + peer.replace("{}", "two")
                   + "  two:\n    links: ['one:uno']\n" + peer.replace("{}", "first")
                   ) as cli:
        r = cli("up", "-d", "--wait", "--wait-timeout", "30", check=False)
        assert r.returncode == 0, r.stderr
        assert {row["service"]: row["health"] for row in
                ps_rows(cli("ps", "--format", "json").stdout)} == {"one": "healthy",
                                                                  "two": "healthy"}
        assert cli("exec", "two", "nslookup", "uno", check=False).returncode == 0


def test_stop_start_restart_after_up_of_one_service(stack: CLI) -> None:
    """`up -d box`, then `stop alone`, `start alone`, `restart alone`: each said nothing
    and did nothing, because `alone` was not among the services the last `up` named."""
    stack("up", "-d")
    stack("up", "-d", "box")

    def state() -> tuple[str, int | None]:
        row = next(r for r in ps_rows(stack("ps", "-a", "--format", "json").stdout)
                   if r["service"] == "alone")
        return row["state"], row.get("pid")

    stack("stop", "alone")
    assert state()[0] == "exited"
    stack("start", "alone")
    running, pid = state()
    assert running == "running"
    stack("restart", "alone")
    assert state()[0] == "running" and state()[1] != pid


def test_ps_orphans_false_and_kill_remove_orphans(stack: CLI) -> None:
    """A service the stack no longer declares: `ps` lists its container and
    `--orphans=false` leaves it out; `kill` leaves it running unless
    `--remove-orphans` (Compose's), which kills it too."""
    stack("up", "-d")
    text = (stack.cwd / "compose.yaml").read_text()
    (stack.cwd / "compose.yaml").write_text(text.replace("\n  alone:\n", "\n  other:\n"))
    stack("up", "-d")  # `alone` is an orphan now, still running

    def services(*flags: str) -> dict[str, str]:
        rows = ps_rows(stack("ps", "-a", "--format", "json", *flags).stdout)
        return {r["service"]: r["state"] for r in rows}

    assert "alone" in services()
    assert "alone" not in services("--orphans=false") and "box" in services("--orphans=false")
    bad = stack("ps", "--orphans=maybe", check=False)
    assert bad.returncode != 0 and "'maybe' is not a boolean" in bad.stderr
    stack("kill")
    assert services()["alone"] == "running" and services()["box"] == "exited"
    stack("kill", "--remove-orphans")
    assert services()["alone"] == "exited"


def test_run_of_an_image_with_a_memory_that_is_no_size_says_so(stack: CLI) -> None:
    """It ended the daemon's stream: "the daemon ended the stream before the container
    exited, so its exit code is unknown"."""
    r = stack("run", "--rm", "-m", "10zb", DEMO_IMAGE, "true", check=False)
    assert r.returncode == 2 and "-m '10zb' is not a memory size" in r.stderr, r.stderr
    assert stack("run", "--rm", "-m", "64m", DEMO_IMAGE, "true").returncode == 0


def test_kill_takes_a_signal_number_and_refuses_what_is_no_signal(stack: CLI) -> None:
    """`docker compose kill -s 9` works; stackd's made it "SIG9" and the kill failed.
    And `kill -s NOTASIG` failed its step, yet exited 0."""
    r = stack("kill", "-s", "NOTASIG", "box", check=False)
    assert r.returncode == 2 and "unknown signal 'SIGNOTASIG'" in r.stderr, r.stderr
    assert ps_rows(stack("ps", "--format", "json", "box").stdout)[0]["state"] == "running"
    stack("kill", "-s", "9", "box")
    assert ps_rows(stack("ps", "-a", "--format", "json", "box").stdout)[0]["state"] == "exited"


def test_lifecycle_verbs_on_a_stack_that_is_down_or_lacks_the_service(stack: CLI) -> None:
    """Compose's answers: stop, restart, kill and rm of a stack that is down have
    nothing to do (they failed: "the daemon keeps no stack"); a service the stack does
    not have is refused (stop said nothing and exited 0); start of a stack with no
    container says so (it said nothing and exited 0)."""
    stack("down")
    for verb, said in (("stop", ""), ("restart", ""), ("kill", "No container to kill"),
                       ("rm", "No stopped containers")):
        r = stack(verb, check=False)
        assert r.returncode == 0 and said in r.stderr, (verb, r.stderr)
    r = stack("start", check=False)
    assert r.returncode == 1 and "keeps no stack named 'habits'" in r.stderr
    stack("up", "-d", "box")
    for verb in ("stop", "start", "restart", "kill", "rm"):
        r = stack(verb, "nosuch", check=False)
        assert r.returncode == 1 and "no such service: nosuch" in r.stderr, (verb, r.stderr)
    stack("rm", "-sf")
    r = stack("start", check=False)
    assert r.returncode == 1 and "habits: no container to start" in r.stderr, r.stderr


def test_up_scale_of_a_service_the_stack_lacks_or_a_global_one_is_refused(
        stack: CLI) -> None:
    """`up --scale nosuch=3` was taken and ignored (Compose: "no such service"); a
    global service was scaled to N on one host (Swarm: "scale can only be used with
    replicated mode"). Both are refused before anything is recorded or made."""
    before = stack("history").stdout
    r = stack("up", "-d", "--scale", "nosuch=3", check=False)
    assert r.returncode == 2 and "no such service: nosuch" in r.stderr, r.stderr

    (stack.cwd / "compose.yaml").write_text(STACK.replace(
        "    network_mode: none\n", "    network_mode: none\n    deploy: {mode: global}\n"))
    r = stack("up", "-d", "--scale", "alone=2", check=False)
    assert r.returncode == 2, r.stderr
    assert ("service 'alone': --scale can only be used with replicated mode: a global "
            "service runs one container on each node") in r.stderr
    assert stack("history").stdout == before
    assert sorted(row["service"] for row in ps_rows(stack("ps", "-a", "--format",
                                                          "json").stdout)) == ["alone", "box"]


def the_row(cli: CLI, *args: str) -> dict[str, Any]:
    """The one container `ps` lists (with `args`), as its JSON row."""
    (row,) = ps_rows(cli("ps", "--format", "json", *args).stdout)
    return row


GRACEFUL = f"""\
name: graceful
services:
  server:
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [sh, -c, "trap 'exit 0' TERM; while true; do sleep 0.1; done"]
"""


def test_up_after_stop_starts_a_server_that_exited_0_on_the_stop(
        no_leaks: Roots, demo_image: str, tmp_path: Path) -> None:
    """`stop` then `up -d` said "up to date, nothing to do" and left down a server
    that ends cleanly on SIGTERM: exit 0 read as a one-shot job that had finished."""
    with stack_dir(no_leaks, tmp_path, "graceful", GRACEFUL) as cli:
        cli("up", "-d")
        cli("stop")
        row = the_row(cli, "-a")
        assert (row["state"], row["exit_code"]) == ("exited", 0)
        cli("up", "-d")
        assert the_row(cli)["state"] == "running"


def web_alone(project: str, keys: str = "") -> str:
    """A stack of one `web` on the demo image, sleeping; `keys`: more of web's keys."""
    return (f"name: {project}\nservices:\n  web:\n    image: {DEMO_IMAGE}\n"
            f'    pull_policy: never\n    command: [sleep, "1000"]\n{keys}')


ALWAYS = web_alone("killed", "    restart: always\n")


def test_kill_is_a_users_stop_that_no_restart_policy_undoes(
        no_leaks: Roots, demo_image: str, tmp_path: Path) -> None:
    """Docker's kill marks the container stopped by the user; stackd's handed the exit
    to the restart policy, so `kill` of a `restart: always` service (or `container
    kill` of a `run --restart always`) was undone within a second."""
    with stack_dir(no_leaks, tmp_path, "killed", ALWAYS) as cli:
        cli("up", "-d")
        cli("kill", "web")
        try:
            cli("run", "-d", "--restart", "always", "--name", "solo", DEMO_IMAGE,
                "sleep", "1000")
            cli("container", "kill", "solo")
            time.sleep(3)  # the restart policy's backoff starts at 0.1 s
            row = the_row(cli, "-a")
            assert (row["state"], row["exit_code"]) == ("exited", 137)
            assert [line for line in cli("container", "ls", "-a").stdout.splitlines()
                    if line.startswith("solo ") and "Exited (137)" in line]
            cli("up", "-d")
            assert the_row(cli)["state"] == "running"
        finally:
            cli("container", "rm", "-f", "solo", check=False)


def test_cp_out_of_an_exited_container_and_into_a_stopped_one(stack: CLI, tmp_path: Path
                                                              ) -> None:
    """Docker's cp reaches a stopped container's files — a test run's report, a
    config put in before a start —; stackd's said "no running container". An exited
    container's file system is mounted nowhere for it (nothing is left in the host's
    mounts) and its paths are resolved inside it, as a running one's."""
    stack("exec", "box", "sh", "-c", "echo report > /report.txt; mkdir /out; "
          "echo r > /out/x; rm /etc/group; ln -s /../../../../tmp /escape")
    stack("stop", "box")
    out = tmp_path / "out"
    stack("cp", "box:/report.txt", str(out))
    assert out.read_text() == "report\n"
    stack("cp", "box:/out", str(tmp_path / "dir"))
    assert (tmp_path / "dir" / "x").read_text() == "r\n"
    r = stack("cp", "box:/etc/group", str(tmp_path / "h"), check=False)
    assert r.returncode == 1 and "no such file in the container: /etc/group" in r.stderr

    (tmp_path / "conf").write_text("put in while stopped\n")
    stack("cp", str(tmp_path / "conf"), "box:/escape/app.conf")  # the container's /tmp
    assert not Path("/tmp/app.conf").exists()
    with open("/proc/self/mounts") as mounts:
        assert str(stack.roots.state) not in mounts.read()
    stack("start", "box")
    said = stack("exec", "box", "sh", "-c", "cat /tmp/app.conf /report.txt").stdout
    assert said == "put in while stopped\nreport\n"


def test_cp_of_an_exited_container_sees_its_volume_and_etc_files(stack: CLI, tmp_path: Path
                                                                 ) -> None:
    """`docker cp` mounts a stopped container's volumes and /etc files for the copy;
    stackd's gave "no such file" for what is in a volume, and for /etc/hostname the
    empty file the mount had covered."""
    stack("exec", "-T", "box", "sh", "-c", "echo kept > /data/kept")
    hostname = stack("exec", "-T", "box", "cat", "/etc/hostname").stdout
    stack("stop", "box")
    stack("cp", "box:/data/kept", str(tmp_path / "kept"))
    assert (tmp_path / "kept").read_text() == "kept\n"
    stack("cp", "box:/etc/hostname", str(tmp_path / "hostname"))
    assert (tmp_path / "hostname").read_text() == hostname and hostname.strip()

    (tmp_path / "put").write_text("into the volume\n")
    stack("cp", str(tmp_path / "put"), "box:/data/put")
    with open("/proc/self/mounts") as mounts:
        assert str(stack.roots.state) not in mounts.read()
    stack("start", "box")
    assert stack("exec", "-T", "box", "cat", "/data/put").stdout == "into the volume\n"


def test_cp_dash_is_a_tar_stream_and_copies_keep_their_times(stack: CLI, tmp_path: Path
                                                            ) -> None:
    """`docker cp SVC:PATH -` writes a tar to stdout and `docker cp - SVC:DIR` unpacks
    one from stdin; stackd's wrote a file named "-" and read one. And a copy keeps
    its source's modification time both ways, as docker cp's does; stackd's had the
    time of the copy."""
    stack("exec", "-T", "box", "sh", "-c", "mkdir -p /srv/t && echo x > /srv/t/f && "
          "chown 7:8 /srv/t/f && touch -d '2001-02-03 04:05:06' /srv/t/f /srv/t")
    old = stack("exec", "-T", "box", "stat", "-c", "%Y", "/srv/t/f").stdout.strip()
    out = subprocess.run([sys.executable, "-m", "stackd", "cp", "box:/srv/t", "-"],
                         cwd=stack.cwd, env=stack.env(), capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert not (stack.cwd / "-").exists()
    with tarfile.open(fileobj=BytesIO(out.stdout)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {"t", "t/f"}
        f = members["t/f"]
        assert tar.extractfile(f).read() == b"x\n"  # type: ignore[union-attr]
        assert (f.uid, f.gid, int(f.mtime)) == (7, 8, int(old))

    stack("cp", "box:/srv/t/f", str(tmp_path / "f"))
    assert int((tmp_path / "f").stat().st_mtime) == int(old)

    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "g").write_text("from a tar\n")
    os.utime(src / "d" / "g", (1e9, 1e9))
    tar_bytes = subprocess.run(["tar", "-C", str(src), "-c", "d"], capture_output=True,
                               check=True).stdout
    put = subprocess.run([sys.executable, "-m", "stackd", "cp", "-", "box:/srv"],
                         cwd=stack.cwd, env=stack.env(), input=tar_bytes,
                         capture_output=True, timeout=60)
    assert put.returncode == 0, put.stderr
    said = stack("exec", "-T", "box", "sh", "-c", "cat /srv/d/g; stat -c %Y /srv/d/g").stdout
    assert said == "from a tar\n1000000000\n"

    into_file = subprocess.run([sys.executable, "-m", "stackd", "cp", "-", "box:/srv/t/f"],
                               cwd=stack.cwd, env=stack.env(), input=tar_bytes,
                               capture_output=True, text=False, timeout=60)
    assert into_file.returncode == 2
    assert b"/srv/t/f is not a directory in the container" in into_file.stderr


def test_rmi_of_an_image_a_container_runs_on_is_refused_and_force_keeps_its_content(
        stack: CLI) -> None:
    """`rmi` untagged and pruned the image of running containers (Docker refuses:
    "conflict: … container … is using its referenced image"); the stack then could
    not restart them: "… is no longer in the image store"."""
    r = stack("rmi", DEMO_IMAGE, check=False)
    assert r.returncode == 1, r.stderr
    assert f"image {DEMO_IMAGE} is used by habits-alone-1 (stack habits), " \
           "habits-box-1 (stack habits)" in r.stderr
    assert DEMO_IMAGE.split(":")[0] in stack("images").stdout

    stack("rmi", "-f", DEMO_IMAGE)
    stack("image", "prune")
    assert DEMO_IMAGE.split(":")[0] not in stack("images").stdout
    stack("restart", "box")  # from the revision's pinned digest, still in the store
    assert the_row(stack, "box")["state"] == "running"


def test_image_prune_all_removes_the_images_no_container_uses(stack: CLI,
                                                              tmp_path: Path) -> None:
    """`docker image prune -a -f` in cleanup scripts: stackd refused -a (rc 2). Every
    image no container uses goes, names and content; the stack's image stays."""
    rootfs = tmp_path / "spare.tar"
    with tarfile.open(rootfs, "w") as tar:
        info = tarfile.TarInfo("etc/spare")
        info.size = 6
        tar.addfile(info, BytesIO(b"spare\n"))
    stack("image", "import", str(rootfs), "spare:1")
    assert "spare" in stack("images").stdout
    out = stack("image", "prune", "-a", "-f").stdout
    assert "Untagged: docker.io/library/spare:1" in out, out
    assert DEMO_IMAGE not in out
    listed = stack("images").stdout
    assert "spare" not in listed and DEMO_IMAGE.split(":")[0] in listed
    assert stack("image", "prune", "-a").stdout.startswith("Deleted 0 blobs")


PROBED = web_alone("probed", """\
    stop_signal: SIGKILL
    restart: always
    healthcheck:
      test: [CMD, "true"]
      interval: 300ms
      timeout: 500ms
      retries: 1
""")


def test_exec_into_a_paused_container_is_refused_and_its_health_is_not_probed(
        no_leaks: Roots, demo_image: str, tmp_path: Path) -> None:
    """An exec into a paused container joined its frozen cgroup and froze with it:
    `stackd exec` hung for good (its TERM went to the frozen process), and every
    health probe left one more frozen process, timed out, and counted as a failure —
    so a healthy container was restarted as unhealthy for being paused."""
    with stack_dir(no_leaks, tmp_path, "probed", PROBED) as cli:
        cli("up", "-d", "--wait")
        before = the_row(cli)
        cli("pause", "web")
        r = cli("exec", "-T", "web", "true", check=False, timeout=20)
        assert r.returncode == 1 and "container probed-web-1 is paused" in r.stderr, r.stderr
        time.sleep(3)  # ten probe intervals
        procs = [line for line in cli("top", "web").stdout.splitlines()
                 if line.startswith("root ")]
        # Its own process only: no probe sits frozen in it.
        assert [p.split()[-2:] for p in procs] == [["sleep", "1000"]], procs
        cli("unpause", "web")
        after = the_row(cli)
        assert (after["pid"], after["health"]) == (before["pid"], "healthy")
        assert cli("exec", "-T", "web", "echo", "thawed").stdout == "thawed\n"
