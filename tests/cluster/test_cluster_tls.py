"""`stackd --host tcp://…` with mutual TLS, against real daemons joined to a real etcd:
two members on loopback (each its own state root and TLS listener on a free port),
driven by the CLI of one of them against the other (docs/cluster.md, the remote API)."""

from __future__ import annotations

import json
import socket
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from support.busybox import busybox_available, make_busybox_tar
from support.e2e_stop import stop_daemon
from support.etcdcluster import EtcdCluster
from support.freeaddrs import free_ports
from support.leakcheck import settle

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from e2e_helpers import CLI
from support.psrows import ps_rows

from stackd.cluster import keys, pki
from stackd.cluster.store import Store
from stackd.images import ImageStore
from stackd.leaks.reclaim import reclaim
from stackd.roots import Roots

IMAGE = "stackd-demo/busybox:latest"
STACK = f"""
name: remote
services:
  web:
    image: {IMAGE}
    command: [sh, -c, "echo ready-$$(hostname); exec sleep 3600"]
    stop_signal: SIGKILL
    network_mode: none
    deploy:
      replicas: 2
"""


@pytest.fixture
def hosts(tmp_path: Path, etcd1: EtcdCluster) -> Iterator[list[CLI]]:
    """Two stackd roots (alpha, beta), each with the busybox image, and a third that
    never joins (a stranger); the CLIs run in a project directory only they see."""
    if not busybox_available():
        pytest.skip("busybox-static is not installed")
    project = tmp_path / "project"
    project.mkdir()
    (project / "compose.yaml").write_text(STACK)
    tar = make_busybox_tar(tmp_path / "busybox.tar", tmp_path)
    clis = []
    for name in ("alpha", "beta", "stranger"):
        roots = Roots(state=tmp_path / name / "state", run=tmp_path / name / "run").ensure()
        if name != "stranger":
            ImageStore(roots).import_rootfs(tar, ref=IMAGE)
        clis.append(CLI(roots, project))
    try:
        yield clis
    finally:
        # The cluster forgets the stack (no agent brings a slot back), each member's
        # daemon removes what it ran, and stops.
        async def forget() -> None:
            async with Store(etcd1.endpoints) as store:
                await store.delete(keys.STACKS, prefix=True)
                await store.delete(keys.ASSIGN, prefix=True)
        trio.run(forget)
        for c in clis[:2]:
            c("down", "-t", "0", check=False)
            stop_daemon(c.roots)
        leaks = [leak for c in clis[:2] for leak in settle(c.roots)]
        if leaks:
            for c in clis[:2]:
                reclaim(c.roots)
            pytest.fail("leaked host resources:\n" + "\n".join(map(str, leaks)),
                        pytrace=False)


def join(cli: CLI, etcd: EtcdCluster, name: str, port: int) -> str:
    out = cli("node", "join", "--etcd", *etcd.endpoints, "--name", name,
              "--listen", f"127.0.0.1:{port}").stdout
    assert f"serving the API on tcp://127.0.0.1:{port} (mutual TLS)" in out
    return f"tcp://127.0.0.1:{port}"


def until(fn, timeout: float):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (result := fn()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
    return result


def etcd_values(etcd: EtcdCluster) -> dict[str, bytes]:
    async def read() -> dict[str, bytes]:
        async with Store(etcd.endpoints) as store:
            kvs, _ = await store.range("")
            return {kv.key: kv.value for kv in kvs}
    return trio.run(read)


def leaked(key_file: Path, values: dict[str, bytes]) -> bool:
    """Whether the private scalar of the key in `key_file` is in any etcd value: as the
    base64 of the PEM (where PKCS#8 puts it for P-256: characters 48 to 88 of the body,
    the part every key does not share) or as hex."""
    pem = key_file.read_bytes()
    secret = b"".join(pem.splitlines()[1:-1])[48:88]
    scalar = pki._load_key(pem).private_numbers().private_value.to_bytes(32, "big").hex()
    flat = [v.replace(b"\\n", b"") for v in values.values()]
    return any(secret in v or scalar.encode() in v.lower() for v in flat)


def test_up_ps_logs_exec_through_another_node_and_who_is_let_in(
        etcd1: EtcdCluster, hosts: list[CLI], tmp_path: Path) -> None:
    alpha, beta, stranger = hosts
    port = free_ports(3)  # alpha's, beta's, and one where nothing listens
    join(alpha, etcd1, "alpha", port)
    to_beta = join(beta, etcd1, "beta", port + 1)

    # Each node made its own key, 0600 in a 0700 directory; etcd holds the CA (which
    # issued both certificates) and neither node's key.
    values = etcd_values(etcd1)
    ca = pki.Authority.from_json(keys.CA, values[keys.CA])
    for cli in (alpha, beta):
        own = pki.node_identity(cli.roots.state)
        assert stat.S_IMODE(own.key.parent.stat().st_mode) == 0o700
        for path in (own.ca, own.cert, own.key):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert pki.issued_by(own, ca)
        assert not leaked(own.key, values)

    # alpha's CLI, from a project directory only alpha has, ups the stack on beta: the
    # stack travels resolved; beta publishes it, the leader spreads it 1/1.
    alpha("--host", to_beta, "up", "-d")

    def beta_ps() -> list[dict[str, object]]:
        rows = ps_rows(alpha("--host", to_beta, "ps", "--format", "json").stdout)
        return [r for r in rows if r.get("state") == "running"]
    rows = until(beta_ps, 30)
    assert len(rows) == 1 and rows[0]["service"] == "web"
    index = str(rows[0]["index"])
    # The same through STACKD_HOST (and `ps`'s fast path, which skips the global flags).
    env_rows = ps_rows(alpha("ps", "--format", "json", STACKD_HOST=to_beta).stdout)
    assert [r["name"] for r in env_rows if r.get("state") == "running"] == [rows[0]["name"]]

    # exec: through beta's API, in beta's container; its exit code ours.
    r = alpha("--host", to_beta, "exec", "-T", "--index", index, "web", "sh", "-c",
              "hostname; exit 3", check=False)
    assert r.returncode == 3, r.stderr
    assert r.stdout.strip() == str(rows[0]["name"])

    # logs -f: beta's container's output, streamed until we stop following.
    follow = subprocess.Popen(
        [sys.executable, "-m", "stackd", "--host", to_beta, "logs", "-f", "web"],
        cwd=alpha.cwd, env=alpha.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        assert follow.stdout is not None
        line = follow.stdout.readline()
        assert f"ready-{rows[0]['name']}" in line, line
        time.sleep(0.5)
        assert follow.poll() is None  # still following
    finally:
        follow.terminate()
        follow.wait(10)

    # ---- who is let in
    to_alpha = f"tcp://127.0.0.1:{port}"
    own = pki.node_identity(alpha.roots.state)

    # No client certificate at all: the handshake fails, no HTTP is answered.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(str(own.ca))
    answer = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                context.wrap_socket(raw) as tls:
            tls.sendall(b"GET /v1/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            while piece := tls.recv(4096):
                answer += piece
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        pass  # refused in the handshake: with TLS 1.3 an alert, or the connection cut
    assert b"HTTP/" not in answer, answer

    # A CLI with no identity says where to get one.
    r = stranger("--host", to_alpha, "ps", check=False)
    assert r.returncode == 2 and "no TLS identity to reach " + to_alpha in r.stderr
    assert "stackd node cert" in r.stderr and "Traceback" not in r.stderr

    # A certificate of another CA: alpha refuses it; and alpha's is unknown to a client
    # that trusts only that other CA.
    other = pki.dir_identity(tmp_path / "other")
    pki.write_identity(other, pki.new_authority("other"), "mallory", server=False)
    r = stranger("--host", to_alpha, "--tlscacert", str(own.ca), "--tlscert",
                 str(other.cert), "--tlskey", str(other.key), "ps", check=False)
    assert r.returncode != 0 and f"the daemon at {to_alpha} refused this client's " \
        "certificate" in r.stderr, r.stderr
    r = stranger("--host", to_alpha, "--tlscacert", str(other.ca), "--tlscert",
                 str(other.cert), "--tlskey", str(other.key), "ps", check=False)
    assert r.returncode != 0 and "unknown CA" in r.stderr, r.stderr

    # `node cert` makes a client identity here, from the cluster's CA: it is let in.
    issued = tmp_path / "client"
    stranger("node", "cert", "--etcd", *etcd1.endpoints, "--out", str(issued),
             "--name", "ops")
    for name in ("ca.pem", "cert.pem", "key.pem"):
        assert stat.S_IMODE((issued / name).stat().st_mode) == 0o600
    assert not leaked(issued / "key.pem", etcd_values(etcd1))
    client_env = {"STACKD_HOST": to_alpha, "STACKD_TLSCACERT": str(issued / "ca.pem"),
                  "STACKD_TLSCERT": str(issued / "cert.pem"),
                  "STACKD_TLSKEY": str(issued / "key.pem")}
    version = json.loads(stranger("version", "--format", "json", **client_env).stdout)
    assert version["daemon"]["state_root"] == str(alpha.roots.state)

    # A verb that would act on this host is refused, named; nothing listening is said.
    r = stranger("cp", "web:/etc/hostname", ".", check=False, **client_env)
    assert r.returncode == 2 and "`stackd cp` acts on this host directly" in r.stderr
    r = stranger("--host", f"tcp://127.0.0.1:{port + 2}", "ps", check=False, **client_env)
    assert "no stackd daemon answers at tcp://127.0.0.1:" in r.stderr, r.stderr

    # A restarted member serves again with the identity it has.
    stop_daemon(alpha.roots)
    alpha("ls")
    until(lambda: stranger("ps", check=False, **client_env).returncode == 0, 15)
