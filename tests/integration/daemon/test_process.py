"""The daemon as a process: socket, pid file, status/stop, start on demand, crash restarts."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from stackd.cli.client import Client
from stackd.daemon.paths import pid_path, socket_path
from stackd.errors import UnavailableError
from stackd.roots import Roots

pytestmark = pytest.mark.root


def stackd(roots: Roots, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ, STACKD_ROOT=str(roots.state), STACKD_RUN=str(roots.run), **env)
    return subprocess.run([sys.executable, "-m", "stackd", *args], env=full_env,
                          capture_output=True, text=True, timeout=60)


def test_socket_is_root_only(daemon) -> None:
    st = os.stat(socket_path(daemon.roots))
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == 0


NOBODY_CONNECT = """
import os, socket, sys
os.setgroups([]); os.setgid(65534); os.setuid(65534)
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except PermissionError:
    print("denied")
else:
    s.sendall(b"GET /v1/version HTTP/1.0\\r\\n\\r\\n")
    print("connected", s.recv(100))
"""


def test_non_root_user_cannot_use_the_socket(daemon) -> None:
    sock = socket_path(daemon.roots)
    # Let nobody reach the socket, so it is the socket itself that refuses: a hard link
    # to it in a directory of its own under /tmp that anyone may traverse. (Opening up
    # the run dir's parents instead would change directories other tests share.)
    reachable = Path(tempfile.mkdtemp(prefix="stackd-test-sock-", dir="/tmp"))
    try:
        os.chmod(reachable, 0o711)
        os.link(sock, reachable / "stackd.sock")
        out = subprocess.run([sys.executable, "-c", NOBODY_CONNECT,
                              str(reachable / "stackd.sock")],
                             capture_output=True, text=True, timeout=30)
    finally:
        shutil.rmtree(reachable)
    assert out.stdout.strip() == "denied", out.stdout + out.stderr


def test_status_and_stop(daemon) -> None:
    pid = daemon.pid
    r = stackd(daemon.roots, "daemon", "status")
    assert r.returncode == 0
    assert f"running: pid {pid}" in r.stdout
    r = stackd(daemon.roots, "daemon", "stop")
    assert r.returncode == 0, r.stderr
    assert "stopped" in r.stdout
    assert not socket_path(daemon.roots).exists()
    assert not pid_path(daemon.roots).exists()
    r = stackd(daemon.roots, "daemon", "status")
    assert r.returncode == 3
    assert "not running" in r.stdout


def test_a_second_daemon_refuses_to_start(daemon) -> None:
    r = stackd(daemon.roots, "daemon")
    assert r.returncode == 1
    assert f"already runs for this run dir (pid {daemon.pid})" in r.stderr
    with daemon.client() as c:
        assert c.get("/v1/version")["pid"] == daemon.pid


def test_cli_starts_the_daemon_on_demand(daemons) -> None:
    assert not socket_path(daemons.roots).exists()
    t0 = time.monotonic()
    with Client(daemons.roots) as c:
        v = c.get("/v1/version")
    print(f"start on demand: {time.monotonic() - t0:.2f}s")
    assert v["pid"] == daemons.pid
    assert v["state_root"] == str(daemons.roots.state)
    # It outlives the client that started it.
    with Client(daemons.roots, autostart=False) as c:
        assert c.get("/v1/version")["pid"] == v["pid"]


def test_two_clients_starting_at_once_get_one_daemon(daemons) -> None:
    code = ("from stackd.cli.client import Client\n"
            "print(Client().get('/v1/version')['pid'])")
    env = dict(os.environ, STACKD_ROOT=str(daemons.roots.state), STACKD_RUN=str(daemons.roots.run))
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              text=True) for _ in range(3)]
    pids = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert pids == {str(daemons.pid)}


def test_a_client_ends_the_daemon_it_started_when_another_won_the_race(daemons) -> None:
    """Three clients starting at once each spawn a daemon; the losers find the lock
    taken and go. One still starting when the winner is stopped (a slow machine, a
    test's teardown) took the lock and came up unasked: CI found such a daemon
    running an hour after its test. The client whose daemon lost now ends it."""
    daemons.start()  # the winner
    late = subprocess.Popen(["sleep", "30"])  # stands for a loser still starting
    try:
        Client(daemons.roots)._wait_alive(late)
        assert late.wait(timeout=5) == -signal.SIGTERM
    finally:
        late.kill()
        late.wait()


def test_no_autostart_says_how_to_start(daemons) -> None:
    with Client(daemons.roots, autostart=False) as c, pytest.raises(UnavailableError) as err:
        c.get("/v1/version")
    assert "no stackd daemon answers" in str(err.value)
    assert "stackd daemon" in str(err.value.hint)


def test_sigkill_then_restart_needs_no_cleanup(daemon) -> None:
    old = daemon.pid
    os.kill(old, signal.SIGKILL)
    daemon.procs[0].wait(timeout=10)
    assert socket_path(daemon.roots).exists()  # left behind by the killed daemon
    daemon.start()
    assert daemon.pid != old
    with daemon.client() as c:
        assert c.get("/v1/version")["pid"] == daemon.pid


def test_logs_are_json_lines(daemon) -> None:
    import json

    with daemon.client() as c:
        c.get("/v1/version")
    lines = [json.loads(line) for line in daemon.log.read_text().splitlines() if line.strip()]
    listening = [x for x in lines if x["msg"] == "listening"]
    assert listening and listening[0]["pid"] == daemon.pid
    assert {"ts", "level", "logger", "msg"} <= set(listening[0])


def test_a_namespace_left_by_a_killed_daemon_is_released_at_start(daemons) -> None:
    # What a daemon SIGKILLed between making a container's namespace and recording its
    # addresses leaves: a mounted netns no record names, of a container never created.
    from stackd.netbridge import netns

    stray = netns.netns_path(daemons.roots.run, "chaos-s18-1-7ec9cbe4")
    netns.create(stray)
    try:
        daemons.start()
        deadline = time.monotonic() + 10
        while netns.is_netns(stray) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not netns.is_netns(stray) and not stray.exists()
        with daemons.client() as c:
            events = list(c.stream("GET", "/v1/events", params={"since": 0, "follow": False}))
        assert any(e.get("type") == "heal" and e.get("container") == "chaos-s18-1-7ec9cbe4"
                   for e in events), events
    finally:
        netns.remove(stray)
