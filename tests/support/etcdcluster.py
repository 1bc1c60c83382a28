"""Real etcd clusters for tests: 1 or 3 members on free loopback ports, data in tmp.

Each member is an `etcd` process this fixture started; teardown kills them by PID
(never by name) and waits for them. Short heartbeat and election timeouts make a
killed member's replacement leader appear within about a second.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from support.freeaddrs import free_ports
from support.hostpackages import require_command


@dataclass
class Member:
    name: str
    client_url: str
    peer_url: str
    data_dir: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    argv: list[str] = field(default_factory=list)  # how it was started
    netns: str | None = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def start(self) -> None:
        """(Re)start it as it was started, on its data dir: a killed member rejoins its
        cluster (etcd ignores the --initial-cluster flags once the data dir exists).
        Returns at once; `wait_healthy` waits for it to serve."""
        assert self.argv and (self.proc is None or self.proc.poll() is not None)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)

    def wait_healthy(self, timeout: float = 20.0) -> None:
        """Until it answers /health as healthy: it is up and its cluster has a leader."""
        assert self.proc is not None
        _wait_healthy(self.client_url, self.proc, self.log, timeout, self.netns)


@dataclass
class EtcdCluster:
    members: list[Member] = field(default_factory=list)

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    def stop(self) -> None:
        for m in self.members:
            m.kill()

    def leader(self) -> Member:
        """The member raft has as leader now, as the first live member says."""
        for m in self.members:
            if m.proc is None or m.proc.poll() is not None:
                continue
            with contextlib.ExitStack() as stack:
                if m.netns is not None:
                    from stackd.netbridge.netns import entered

                    stack.enter_context(entered(f"/run/netns/{m.netns}"))
                status = httpx.post(f"{m.client_url}/v3/maintenance/status", json={},
                                    timeout=5.0).json()
                ids = httpx.post(f"{m.client_url}/v3/cluster/member/list", json={},
                                 timeout=5.0).json()
            name = {x["ID"]: x["name"] for x in ids["members"]}[status["leader"]]
            return next(x for x in self.members if x.name == name)
        raise AssertionError("no etcd member is running")


def _healthy(url: str, netns: str | None) -> bool:
    with contextlib.ExitStack() as stack:
        if netns is not None:
            from stackd.netbridge.netns import entered

            stack.enter_context(entered(f"/run/netns/{netns}"))
        try:
            return bool(httpx.get(f"{url}/health", timeout=1.0).json().get("health") == "true")
        except (httpx.HTTPError, ValueError):
            return False


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path,
                  timeout: float = 20.0, netns: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"etcd at {url} exited: {log.read_text()[-2000:]}")
        if _healthy(url, netns):
            return
        time.sleep(0.05)
    raise AssertionError(f"etcd at {url} not healthy in {timeout} s: "
                         f"{log.read_text()[-2000:]}")


def start_etcd(tmp: Path, size: int, host: str = "127.0.0.1",
               netns: str | None = None) -> EtcdCluster:
    """`size` members on `host`; with `netns`, run inside that network namespace
    (`ip netns exec`, which execs etcd: the PID is etcd's own)."""
    require_command("etcd", "etcd-server")
    etcd = shutil.which("etcd")
    assert etcd is not None
    cluster = EtcdCluster()
    # Chosen together: two free_port() calls may pick the same free port (a member
    # then found its port taken by another's: "bind: address already in use").
    first = free_ports(2 * size)
    for i in range(size):
        cluster.members.append(Member(
            name=f"m{i}", client_url=f"http://{host}:{first + 2 * i}",
            peer_url=f"http://{host}:{first + 2 * i + 1}", data_dir=tmp / f"etcd-m{i}",
            log=tmp / f"etcd-m{i}.log"))
    initial = ",".join(f"{m.name}={m.peer_url}" for m in cluster.members)
    try:
        for m in cluster.members:
            m.log.write_bytes(b"")
            prefix = ["ip", "netns", "exec", netns] if netns else []
            m.netns = netns
            m.argv = [*prefix, etcd, "--name", m.name, "--data-dir", str(m.data_dir),
                      "--listen-client-urls", m.client_url,
                      "--advertise-client-urls", m.client_url,
                      "--listen-peer-urls", m.peer_url,
                      "--initial-advertise-peer-urls", m.peer_url,
                      "--initial-cluster", initial,
                      "--initial-cluster-token", f"stackd-test-{tmp.name}",
                      "--initial-cluster-state", "new",
                      "--heartbeat-interval", "50", "--election-timeout", "500",
                      "--log-level", "warn"]
            m.start()
        for m in cluster.members:
            m.wait_healthy()
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture
def etcd1(tmp_path: Path) -> Iterator[EtcdCluster]:
    """A one-member etcd cluster."""
    cluster = start_etcd(tmp_path, 1)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def etcd3(tmp_path: Path) -> Iterator[EtcdCluster]:
    """A three-member etcd cluster."""
    cluster = start_etcd(tmp_path, 3)
    try:
        yield cluster
    finally:
        cluster.stop()
