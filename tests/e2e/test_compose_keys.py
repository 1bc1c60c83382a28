"""Compose keys end to end: a host port range shared by replicas, `stop`/`restart`/
`down` -t, a platform the host can't run, `attach: false`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import CLI, torn_down
from support.psrows import ps_rows

from stackd.roots import Roots

pytestmark = [pytest.mark.root, pytest.mark.slow]

IMAGE = "image: stackd-demo/busybox:latest\n    pull_policy: never\n"


@pytest.fixture
def stack(no_leaks: Roots, demo_image: str, tmp_path: Path) -> Iterator[CLI]:
    work = tmp_path / "keys"
    work.mkdir()
    with torn_down(CLI(no_leaks, work)) as cli:
        yield cli


def free_range(length: int) -> int:
    """The first of `length` consecutive free TCP ports on loopback, found at run time."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + length > 65535:
            continue
        held: list[socket.socket] = []
        try:
            for port in range(first, first + length):
                s = socket.socket()
                held.append(s)
                s.bind(("0.0.0.0", port))
            return first
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise AssertionError("no free port range found")


def fetch(port: int, path: str = "/", timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                return r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_three_replicas_each_answer_on_their_own_port_of_the_range(stack: CLI) -> None:
    first = free_range(3)
    (stack.cwd / "compose.yaml").write_text(
        f"name: ranged\nservices:\n  web:\n    {IMAGE}"
        "    command: [sh, -c, 'mkdir -p /www && hostname > /www/index.html && "
        "exec httpd -f -p 80 -h /www']\n"
        "    stop_signal: SIGKILL\n"
        "    deploy: {replicas: 3}\n"
        f"    ports: ['{first}-{first + 2}:80']\n")
    stack("up", "-d")
    answers = [fetch(port).strip() for port in range(first, first + 3)]
    assert answers == ["ranged-web-1", "ranged-web-2", "ranged-web-3"]


def test_a_port_without_a_host_port_gets_a_free_one_per_replica(stack: CLI) -> None:
    """`ports: ["80"]` (and `127.0.0.1::80`) publish on a free host port, one per
    replica, which `port` and `ps` tell (Compose's). They were dropped without a word:
    nothing was published, and `port` said so."""
    (stack.cwd / "compose.yaml").write_text(
        f"name: anyport\nservices:\n  web:\n    {IMAGE}"
        "    command: [sh, -c, 'mkdir -p /www && hostname > /www/index.html && "
        "exec httpd -f -p 80 -h /www']\n"
        "    stop_signal: SIGKILL\n"
        "    deploy: {replicas: 2}\n"
        "    ports: ['80', '127.0.0.1::80']\n")
    stack("up", "-d")
    chosen = []
    for index in ("1", "2"):
        hosts = stack("port", "--index", index, "web", "80").stdout.split()
        assert sorted(h.rpartition(":")[0] for h in hosts) == ["0.0.0.0", "127.0.0.1"]
        for host in hosts:
            port = int(host.rpartition(":")[2])
            assert fetch(port).strip() == f"anyport-web-{index}"
            chosen.append(port)
    assert len(set(chosen)) == 4
    shown = stack("ps").stdout
    assert all(f":{port}->80/tcp" in shown for port in chosen)
    # docker run's forms too.
    r = stack("run", "--rm", "-p", "80", "-p", "127.0.0.1::81/udp",
              "stackd-demo/busybox:latest", "true")
    assert r.returncode == 0


def test_run_publish_all_publishes_what_the_image_exposes(stack: CLI, tmp_path: Path
                                                         ) -> None:
    """`docker run -d -P nginx`: stackd took -P for compose run's --service-ports only
    and refused it for an image ("only for a service run")."""
    from support.busybox import make_busybox_tar

    from stackd.images import ImageStore
    from stackd.images.models import ImageConfig

    tar = make_busybox_tar(tmp_path / "exposing.tar", tmp_path / "exposing")
    ImageStore(stack.roots).import_rootfs(tar, ref="local/exposing:1", config=ImageConfig(
        exposed_ports=("80/tcp", "81/tcp"),
        cmd=("sh", "-c", "echo published > /i; exec httpd -f -p 80 -h /")))
    stack("run", "-d", "-P", "--name", "web", "local/exposing:1")
    try:
        ports = {line.partition(" -> ")[0]: int(line.rpartition(":")[2])
                 for line in stack("port", "web").stdout.splitlines()}
        assert set(ports) == {"80/tcp", "81/tcp"} and len(set(ports.values())) == 2
        assert fetch(ports["80/tcp"], "/i") == "published\n"
        # -p for one of them: that one as given, the other on a free port.
        given = free_range(1)
        stack("run", "-d", "--publish-all", "-p", f"{given}:80", "--name", "web2",
              "local/exposing:1")
        lines = stack("port", "web2").stdout.splitlines()
        assert f"80/tcp -> 0.0.0.0:{given}" in lines and len(lines) == 2
        assert stack("port", "web2", "80").stdout == f"0.0.0.0:{given}\n"
        # No stack file here: `stop web` says where a container's verbs are.
        r = stack("stop", "web", check=False)
        assert r.returncode == 2 and "`stackd container stop NAME`" in r.stderr
    finally:
        stack("container", "rm", "-f", "web", "web2", check=False)
    bad = tmp_path / "bad.tar"
    ImageStore(stack.roots).import_rootfs(make_busybox_tar(bad, tmp_path / "bad"),
                                          ref="local/bad:1",
                                          config=ImageConfig(exposed_ports=("abc/tcp",)))
    r = stack("run", "--rm", "-P", "local/bad:1", "true", check=False)
    assert r.returncode == 2 and "image local/bad:1 exposes 'abc/tcp', which -P cannot " \
        "publish" in r.stderr


def _sleeper(cli: CLI) -> None:
    # PID 1 without a SIGTERM handler ignores SIGTERM: a stop waits out the grace period
    # (30 s here) unless -t says otherwise.
    (cli.cwd / "compose.yaml").write_text(
        f"name: slow\nservices:\n  app:\n    {IMAGE}"
        "    command: [sleep, '1000']\n    stop_grace_period: 30s\n")
    cli("up", "-d")


def _timed(cli: CLI, *args: str) -> float:
    start = time.monotonic()
    cli(*args)
    return time.monotonic() - start


def test_stop_restart_and_down_take_a_timeout(stack: CLI) -> None:
    _sleeper(stack)
    assert _timed(stack, "stop", "-t", "1") < 15
    assert _timed(stack, "restart", "--timeout", "1") < 15
    assert _timed(stack, "down", "-t", "0") < 15
    assert stack("ps", "-a", "-q").stdout.strip() == ""


def test_a_platform_the_host_cannot_run_is_refused_naming_both(stack: CLI) -> None:
    other = "linux/amd64" if os.uname().machine == "s390x" else "linux/s390x"
    (stack.cwd / "compose.yaml").write_text(
        f"name: plat\nservices:\n  app:\n    {IMAGE}    platform: {other}\n"
        "    command: [sleep, '1000']\n")
    r = stack("up", "-d", check=False)
    assert r.returncode != 0
    assert f"service 'app' asks for platform {other}, which this host" in r.stderr
    assert r.stderr.count("asks for platform") == 1, r.stderr  # said once, not twice
    assert stack("ps", "-a", "-q").stdout.strip() == ""


def test_devices_are_made_and_an_unlisted_one_is_denied_by_the_cgroup(stack: CLI) -> None:
    (stack.cwd / "compose.yaml").write_text(
        f"name: devs\nservices:\n  app:\n    {IMAGE}"
        "    command: [sleep, '1000']\n    stop_signal: SIGKILL\n"
        "    devices: ['/dev/null:/dev/mynull', '/dev/fuse', '/dev/zero:/dev/sub/z:r']\n"
        f"  other:\n    {IMAGE}"
        "    command: [sleep, '1000']\n    stop_signal: SIGKILL\n")
    stack("up", "-d")
    r = stack("exec", "-T", "app", "sh", "-c",
              "stat -c %t:%T /dev/mynull; echo hi > /dev/mynull && wc -c < /dev/mynull; "
              ": < /dev/fuse && echo fuse-ok; head -c 3 /dev/sub/z | od -An -tx1")
    assert r.stdout.split("\n")[:3] == ["1:3", "0", "fuse-ok"]
    assert r.stdout.split("\n")[3].split() == ["00", "00", "00"]
    # The same node made by hand where it is not listed: the device cgroup refuses it.
    denied = stack("exec", "-T", "other", "sh", "-c",
                   "mknod /dev/f2 c 10 229 && echo made && : < /dev/f2", check=False)
    assert denied.returncode != 0
    assert denied.stdout.strip() == "made"
    assert "Operation not permitted" in denied.stderr
    absent = stack("exec", "-T", "other", "sh", "-c", "test -e /dev/fuse || echo absent")
    assert absent.stdout.strip() == "absent"


def test_run_flags_people_use_take_effect(stack: CLI) -> None:
    import json

    from stackd.runtime.layout import ContainerPaths

    (stack.cwd / "data").mkdir()
    (stack.cwd / "data" / "x").write_text("from-the-bind\n")
    (stack.cwd / "vars.env").write_text("# a comment\nFROMFILE=filed value\nBARE\n")
    script = ("hostname; echo \"$FROMFILE|$BARE\"; cat /data/x; ulimit -n; "
              "grep NoNewPrivs /proc/self/status; grep -c ' /scratch tmpfs' /proc/mounts")
    r = stack("run", "--rm", "-h", "myhost", "--env-file", "vars.env", "-v", "./data:/data",
              "--ulimit", "nofile=512:1024", "--security-opt", "no-new-privileges",
              "--tmpfs", "/scratch:size=1m", "stackd-demo/busybox:latest", "sh", "-c",
              script, BARE="from-shell")
    assert r.stdout.split("\n")[:6] == [
        "myhost", "filed value|from-shell", "from-the-bind", "512", "NoNewPrivs:\t1", "1"]
    # --privileged: CAP_SYS_ADMIN (bit 21) and more, which a plain run lacks.
    caps = stack("run", "--rm", "--privileged", "stackd-demo/busybox:latest", "sh", "-c",
                 "grep CapEff /proc/self/status").stdout.split()[1]
    plain = stack("run", "--rm", "stackd-demo/busybox:latest", "sh", "-c",
                  "grep CapEff /proc/self/status").stdout.split()[1]
    assert int(caps, 16) > int(plain, 16)
    assert int(caps, 16) & (1 << 21) and not int(plain, 16) & (1 << 21)
    # --stop-signal, --stop-timeout and --label: what the runtime was given.
    stack("run", "-d", "--name", "flagged", "--stop-signal", "usr1", "--stop-timeout", "3",
          "--label", "team=web", "stackd-demo/busybox:latest", "sleep", "1000")
    spec = json.loads(ContainerPaths(stack.roots, "flagged").spec.read_text())
    assert (spec["stop_signal"], spec["stop_grace"]) == ("SIGUSR1", 3.0)
    assert spec["labels"]["team"] == "web"
    # A detached image run belongs to no stack: removed through the API, by name.
    subprocess.run([sys.executable, "-c", "from stackd.cli.client import Client\n"
                    "with Client() as c: c.post('/v1/containers/flagged/remove')"],
                   env=stack.env(), check=True, timeout=60)


def test_run_flags_that_make_no_sense_are_refused(stack: CLI) -> None:
    r = stack("run", "--rm", "--label", "io.stackd.project=x", "stackd-demo/busybox:latest",
              "true", check=False)
    assert r.returncode != 0 and "io.stackd. prefix is stackd's own" in r.stderr
    r = stack("run", "--rm", "--security-opt", "apparmor=x", "stackd-demo/busybox:latest",
              "true", check=False)
    assert r.returncode != 0 and "--security-opt 'apparmor=x' is not supported" in r.stderr
    r = stack("run", "--rm", "--restart", "always", "stackd-demo/busybox:latest", "true",
              check=False)
    assert r.returncode != 0 and "--restart always and --rm conflict" in r.stderr
    r = stack("run", "--rm", "--tmpfs", "/x:suid", "stackd-demo/busybox:latest", "true",
              check=False)
    assert r.returncode != 0 and "--tmpfs '/x:suid': option 'suid' is not supported" in r.stderr


def test_extra_hosts_and_dns_keys_reach_the_containers_files(stack: CLI) -> None:
    (stack.cwd / "compose.yaml").write_text(
        f"name: names\nservices:\n  app:\n    {IMAGE}"
        "    command: [sleep, '1000']\n    stop_signal: SIGKILL\n"
        "    extra_hosts: ['host.docker.internal:host-gateway', 'db.example:10.9.8.7']\n"
        "    dns: [192.0.2.53]\n    dns_search: [corp.example]\n    dns_opt: [attempts:2]\n")
    stack("up", "-d")
    hosts = stack("exec", "-T", "app", "cat", "/etc/hosts").stdout
    resolv = stack("exec", "-T", "app", "cat", "/etc/resolv.conf").stdout
    gateway = resolv.split("\n")[0].split()[1]
    assert f"{gateway}\thost.docker.internal" in hosts
    assert "10.9.8.7\tdb.example" in hosts
    assert resolv.split("\n")[:4] == [f"nameserver {gateway}", "nameserver 192.0.2.53",
                                      "search corp.example", "options ndots:0 attempts:2"]
    r = stack("run", "--rm", "--add-host", "gw:host-gateway", "--dns", "192.0.2.54",
              "stackd-demo/busybox:latest", "sh", "-c",
              "grep -c 'gw$' /etc/hosts; grep -c 192.0.2.54 /etc/resolv.conf")
    assert r.stdout.split() == ["1", "1"]


def test_a_links_alias_is_the_linking_services_alone(stack: CLI) -> None:
    """`app: {links: [pg:db]}` in a stack that also has a service named db: in app,
    `db` is pg (the link's alias, Docker's); in worker, `db` is the db service alone.
    The alias was a name of pg on the whole network, so worker's `db` answered with
    both services' addresses in turn."""
    sleeper = "    command: [sleep, '1000']\n    stop_signal: SIGKILL\n"
    (stack.cwd / "compose.yaml").write_text(
        f"name: linked\nservices:\n  pg:\n    {IMAGE}{sleeper}  db:\n    {IMAGE}{sleeper}"
        f"  app:\n    {IMAGE}{sleeper}    links: ['pg:db']\n"
        f"  worker:\n    {IMAGE}{sleeper}")
    stack("up", "-d")

    def address(service: str) -> str:
        return stack("exec", "-T", service, "sh", "-c",
                     "ip -4 -o addr show eth0 | awk '{print $4}'").stdout.strip().split("/")[0]

    def resolved(service: str, name: str) -> set[str]:
        found: set[str] = set()
        for _ in range(4):  # replicas would take turns: ask more than once
            out = stack("exec", "-T", service, "nslookup", "-type=a", name,
                        check=False).stdout
            found |= {line.split()[-1] for line in out.split("Name:", 1)[-1].splitlines()
                      if line.startswith("Address") and "Name:" in out}
        return found

    pg, db = address("pg"), address("db")
    assert resolved("app", "db") == {pg}
    assert resolved("worker", "db") == {db}
    assert resolved("app", "pg") == {pg}


def test_run_joins_a_stacks_network_by_name(stack: CLI) -> None:
    (stack.cwd / "compose.yaml").write_text(
        f"name: netrun\nservices:\n  web:\n    {IMAGE}"
        "    command: [sh, -c, 'mkdir -p /www && echo hello-from-web > /www/index.html && "
        "exec httpd -f -p 80 -h /www']\n    stop_signal: SIGKILL\n")
    stack("up", "-d")
    addr = stack("exec", "-T", "web", "sh", "-c",
                 "ip -4 -o addr show eth0 | awk '{print $4}'").stdout.strip().split("/")[0]
    # An image run (no stack file where it runs), on the stack's network by its name.
    elsewhere = stack.cwd / "elsewhere"
    elsewhere.mkdir()
    outside = CLI(stack.roots, elsewhere)
    r = outside("run", "--rm", "--network", "netrun_default", "stackd-demo/busybox:latest",
                "wget", "-qO-", f"http://{addr}/")
    assert r.stdout.strip() == "hello-from-web"
    missing = outside("run", "--rm", "--network", "nonesuch", "stackd-demo/busybox:latest",
                      "true", check=False)
    assert missing.returncode != 0 and "network 'nonesuch' does not exist" in missing.stderr


def test_cgroup_host_shares_the_hosts_cgroup_namespace(stack: CLI) -> None:
    (stack.cwd / "compose.yaml").write_text(
        f"name: cgns\nservices:\n  shared:\n    {IMAGE}    cgroup: host\n"
        "    command: [sleep, '1000']\n    stop_signal: SIGKILL\n"
        f"  own:\n    {IMAGE}    cgroup: private\n"
        "    command: [sleep, '1000']\n    stop_signal: SIGKILL\n")
    stack("up", "-d")
    shared = stack("exec", "-T", "shared", "cat", "/proc/self/cgroup").stdout
    own = stack("exec", "-T", "own", "cat", "/proc/self/cgroup").stdout
    # In the host's namespace the container's own cgroup path shows; in its own, "/".
    assert "stackd" in shared
    assert "stackd" not in own and all(line.endswith(":/") for line in own.split())


def test_pid_and_ipc_host_share_the_hosts_namespaces(stack: CLI) -> None:
    """They were accepted and ignored: the container got its own PID and IPC namespaces."""
    (stack.cwd / "compose.yaml").write_text(
        f"name: nsmodes\nservices:\n  shared:\n    {IMAGE}    pid: host\n    ipc: host\n"
        "    command: [sleep, '1000']\n    stop_signal: SIGKILL\n"
        f"  own:\n    {IMAGE}    ipc: shareable\n"
        "    command: [sleep, '1000']\n    stop_signal: SIGKILL\n")
    stack("up", "-d")
    host = [os.readlink(f"/proc/self/ns/{ns}") for ns in ("pid", "ipc")]
    for service, same in (("shared", True), ("own", False)):
        inside = stack("exec", "-T", service, "sh", "-c",
                       "readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc").stdout.split()
        assert [a == b for a, b in zip(inside, host, strict=True)] == [same, same], inside


def test_mac_address_and_interface_name_are_the_containers(stack: CLI) -> None:
    (stack.cwd / "compose.yaml").write_text(
        f"name: nics\nservices:\n  app:\n    {IMAGE}"
        "    command: [sleep, '1000']\n    stop_signal: SIGKILL\n"
        "    mac_address: 02:42:ac:11:00:42\n"
        "    networks:\n      default: {interface_name: lan0}\n")
    stack("up", "-d")
    link = stack("exec", "-T", "app", "cat", "/sys/class/net/lan0/address").stdout.strip()
    assert link == "02:42:ac:11:00:42"
    absent = stack("exec", "-T", "app", "sh", "-c", "test -e /sys/class/net/eth0 || echo no")
    assert absent.stdout.strip() == "no"


def test_logging_max_size_and_max_file_bound_what_is_kept(stack: CLI) -> None:
    (stack.cwd / "compose.yaml").write_text(
        f"name: logsize\nservices:\n  chatty:\n    {IMAGE}"
        "    logging: {driver: json-file, options: {max-size: 4k, max-file: '2'}}\n"
        "    command: [sh, -c, 'for i in $$(seq 1 400); do echo line-$$i-$$(printf %060d 0); "
        "done; exec sleep 1000']\n    stop_signal: SIGKILL\n")
    stack("up", "-d")
    deadline = time.monotonic() + 20
    while "line-400-" not in (out := stack("logs", "--no-log-prefix").stdout):
        assert time.monotonic() < deadline, out[-300:]
        time.sleep(0.2)
    lines = out.splitlines()
    # ~40 KB written; two files of 4 KB keep the last ~100 lines, the newest among them.
    assert lines[-1].startswith("line-400-") and 20 < len(lines) < 150, len(lines)
    assert not any(line.startswith("line-1-") for line in lines)


def test_ipam_ip_range_and_aux_addresses_shape_the_addresses_handed_out(stack: CLI) -> None:
    """Both were accepted and ignored: the first container got 10.77.0.2."""
    (stack.cwd / "compose.yaml").write_text(
        f"name: ipam\nservices:\n  a:\n    {IMAGE}    command: [sleep, '1000']\n"
        "    stop_signal: SIGKILL\n    networks: [n]\n"
        f"  fixed:\n    {IMAGE}    command: [sleep, '1000']\n    stop_signal: SIGKILL\n"
        "    networks: {n: {ipv4_address: 10.77.0.9}}\n"
        "networks:\n  n:\n    ipam:\n      config:\n        - subnet: 10.77.0.0/16\n"
        "          ip_range: 10.77.5.0/24\n"
        "          aux_addresses: {router: 10.77.5.1}\n")
    stack("up", "-d")
    for service, want in (("a", "10.77.5.2"), ("fixed", "10.77.0.9")):
        addr = stack("exec", "-T", service, "sh", "-c",
                     "ip -4 -o addr show eth0").stdout.split()[3]
        assert addr == f"{want}/16", (service, addr)


def test_cpuset_cpu_quota_cpu_period_and_uts_host_take_effect(stack: CLI) -> None:
    """All four were refused as not supported yet."""

    (stack.cwd / "compose.yaml").write_text(
        f"name: cpus\nservices:\n  limited:\n    {IMAGE}    command: [sleep, '1000']\n"
        "    stop_signal: SIGKILL\n    cpuset: '0'\n    cpu_quota: 25000\n"
        "    cpu_period: 50000\n    uts: host\n")
    stack("up", "-d")
    out = stack("exec", "-T", "limited", "sh", "-c",
                "grep Cpus_allowed_list /proc/self/status; hostname").stdout.split()
    assert out == ["Cpus_allowed_list:", "0", socket.gethostname()], out
    (cid,) = [r["id"] for r in ps_rows(stack("ps", "--format", "json").stdout)]
    v1 = list(Path("/sys/fs/cgroup/cpu/stackd").glob(f"*/{cid}"))
    if v1:  # this host's hybrid hierarchy
        assert [(v1[0] / f).read_text().strip()
                for f in ("cpu.cfs_quota_us", "cpu.cfs_period_us")] == ["25000", "50000"]
    else:
        (v2,) = Path("/sys/fs/cgroup/stackd").glob(f"*/{cid}")
        assert (v2 / "cpu.max").read_text().split() == ["25000", "50000"]


def test_oom_score_adj_is_the_containers_and_a_refused_one_is_said(stack: CLI) -> None:
    (stack.cwd / "compose.yaml").write_text(
        f"name: oomadj\nservices:\n  high:\n    {IMAGE}    command: [sleep, '1000']\n"
        "    stop_signal: SIGKILL\n    oom_score_adj: 500\n")
    stack("up", "-d")
    assert stack("exec", "-T", "high", "cat", "/proc/1/oom_score_adj").stdout == "500\n"
    # Lowering it takes CAP_SYS_RESOURCE: root on these machines lacks it, and says so.
    can_lower = True
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("-1")
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("0")
    except PermissionError:
        can_lower = False
    (stack.cwd / "compose.yaml").write_text(
        f"name: oomadj\nservices:\n  high:\n    {IMAGE}    command: [sleep, '1000']\n"
        "    stop_signal: SIGKILL\n    oom_score_adj: -500\n")
    r = stack("up", "-d", check=False)
    if can_lower:
        assert r.returncode == 0, r.stderr
        assert stack("exec", "-T", "high", "cat", "/proc/1/oom_score_adj").stdout == "-500\n"
    else:
        assert r.returncode == 1 and "lowering it needs CAP_SYS_RESOURCE" in r.stderr


@pytest.fixture
def loop_device(tmp_path: Path) -> Iterator[str]:
    from support.loopdev import loop_device

    with loop_device(tmp_path) as dev:
        yield dev


def test_blkio_config_throttles_the_service_and_a_wrong_device_is_said(
        stack: CLI, loop_device: str) -> None:
    (stack.cwd / "compose.yaml").write_text(
        f"name: blkio\nservices:\n  app:\n    {IMAGE}    command: [sleep, '1000']\n"
        f"    stop_signal: SIGKILL\n    devices: ['{loop_device}:/dev/xvdb']\n"
        f"    blkio_config:\n      device_read_bps: [{{path: {loop_device}, rate: 256k}}]\n")
    stack("up", "-d")
    took = _timed(stack, "exec", "-T", "app", "dd", "if=/dev/xvdb", "of=/dev/null",
                  "bs=64k", "count=8", "iflag=direct")
    assert took > 1.5, took  # 512 KiB at 256 KiB/s; unthrottled, milliseconds
    (stack.cwd / "compose.yaml").write_text(
        f"name: blkio\nservices:\n  app:\n    {IMAGE}    command: [sleep, '1000']\n"
        "    blkio_config:\n      device_write_iops: [{path: /dev/null, rate: 10}]\n")
    r = stack("up", "-d", check=False)
    assert r.returncode == 1
    assert ("service 'app': blkio_config.device_write_iops: /dev/null is not a block device"
            in r.stderr)
    assert "Traceback" not in r.stderr and "Group" not in r.stderr
    # Refused before the recreate stopped anything: the old container still runs.
    assert stack("ps", "--status", "running", "-q").stdout.strip() != ""


def test_annotations_are_kept_with_the_container(stack: CLI) -> None:
    import json

    (stack.cwd / "compose.yaml").write_text(
        f"name: notes\nservices:\n  app:\n    {IMAGE}    command: [sleep, '1000']\n"
        "    stop_signal: SIGKILL\n    annotations: [com.example.team=storage]\n")
    stack("up", "-d")
    (info,) = json.loads(stack("container", "inspect", "notes-app-1").stdout)
    assert info["spec"]["annotations"] == {"com.example.team": "storage"}
    assert "com.example.team" not in info["spec"]["labels"]
    assert "com.example.team: storage" in stack("config").stdout


def test_force_recreate_recreates_the_named_service_and_deps_only_when_asked(
        stack: CLI) -> None:
    """A recreated container starts from its image: a mark left in the old one's
    writable layer is gone. Compose's rule: --force-recreate is for the service named;
    what it depends on follows --always-recreate-deps."""
    (stack.cwd / "compose.yaml").write_text(
        f"name: deps\nservices:\n  db:\n    {IMAGE}    command: [sleep, '1000']\n"
        f"    stop_signal: SIGKILL\n  web:\n    {IMAGE}    command: [sleep, '1000']\n"
        "    stop_signal: SIGKILL\n    depends_on: [db]\n")

    def mark() -> None:
        for service in ("db", "web"):
            stack("exec", "-T", service, "touch", "/mark")

    def kept() -> dict[str, bool]:
        return {service: stack("exec", "-T", service, "test", "-e", "/mark",
                               check=False).returncode == 0 for service in ("db", "web")}

    stack("up", "-d")
    mark()
    stack("up", "-d", "--force-recreate", "web")
    assert kept() == {"db": True, "web": False}
    mark()
    stack("up", "-d", "--always-recreate-deps", "web")
    assert kept() == {"db": False, "web": True}
    mark()
    r = stack("up", "-d", "--always-recreate-deps", "--no-recreate", "web", check=False)
    assert r.returncode == 2 and "contradict each other" in r.stderr
    assert kept() == {"db": True, "web": True}


def test_restart_restarts_the_dependents_that_say_restart_true_unless_no_deps(
        stack: CLI) -> None:
    """Compose's `restart db`: app, which depends on db with restart: true, is
    restarted too (a new start writes a new stamp); `other` (plain depends_on) is not;
    with --no-deps db alone is."""
    start = "command: [sh, -c, 'cat /proc/uptime > /stamp; exec sleep 1000']\n"
    (stack.cwd / "compose.yaml").write_text(
        f"name: rdeps\nservices:\n  db:\n    {IMAGE}    {start}    stop_signal: SIGKILL\n"
        f"  app:\n    {IMAGE}    {start}    stop_signal: SIGKILL\n"
        "    depends_on: {db: {condition: service_started, restart: true}}\n"
        f"  other:\n    {IMAGE}    {start}    stop_signal: SIGKILL\n    depends_on: [db]\n")

    def stamps() -> dict[str, str]:
        return {s: stack("exec", "-T", s, "cat", "/stamp").stdout
                for s in ("db", "app", "other")}

    stack("up", "-d")
    before = stamps()
    stack("restart", "db")
    after = stamps()
    assert {s: after[s] != before[s] for s in after} == {
        "db": True, "app": True, "other": False}
    stack("restart", "--no-deps", "db")
    last = stamps()
    assert {s: last[s] != after[s] for s in last} == {"db": True, "app": False, "other": False}


def test_a_device_gone_under_a_running_container_stops_no_other_change(stack: CLI) -> None:
    """The host-device check looks at what a pass creates, never at what runs: with
    app's device path gone (a link removed, as a device unplugged), `other` still
    scales up; only a pass that must make app again is refused, naming it."""
    link = stack.cwd / "mydev"
    link.symlink_to("/dev/null")
    (stack.cwd / "compose.yaml").write_text(
        f"name: gone\nservices:\n  app:\n    {IMAGE}    command: [sleep, '1000']\n"
        f"    stop_signal: SIGKILL\n    devices: ['{link}:/dev/mydev']\n"
        f"  other:\n    {IMAGE}    command: [sleep, '1000']\n    stop_signal: SIGKILL\n")
    stack("up", "-d")
    link.unlink()
    stack("up", "-d", "--scale", "other=2")
    assert sorted(stack("ps", "--services").stdout.split()) == ["app", "other"]
    assert len(stack("ps", "-q", "other").stdout.split()) == 2
    r = stack("up", "-d", "--force-recreate", "app", check=False)
    assert r.returncode == 1 and f"service 'app': device {link}: No such file" in r.stderr, r
    assert "app" in stack("ps", "--services").stdout  # refused before it was stopped


def test_down_of_a_service_removes_it_and_its_dependents_and_keeps_the_rest(
        stack: CLI) -> None:
    """Compose's `down SERVICE`: api and web (which needs api) go, db and the stack's
    network stay; nothing makes them again until `up`, which does."""

    (stack.cwd / "compose.yaml").write_text(
        f"name: part\nservices:\n  db:\n    {IMAGE}    command: [sleep, '1000']\n"
        f"    stop_signal: SIGKILL\n  api:\n    {IMAGE}    command: [sleep, '1000']\n"
        "    stop_signal: SIGKILL\n    depends_on: [db]\n"
        f"  web:\n    {IMAGE}    command: [sleep, '1000']\n    stop_signal: SIGKILL\n"
        "    depends_on: [api]\n")
    stack("up", "-d")

    def services() -> list[str]:
        return sorted(r["service"] for r in ps_rows(
            stack("ps", "-a", "--format", "json").stdout))

    stack("down", "api")
    assert services() == ["db"]
    assert "part_default" in stack("network", "ls").stdout
    time.sleep(1)  # a pass of the daemon's would have made them again by now
    assert services() == ["db"]
    r = stack("down", "--rmi", "local", "api", check=False)
    assert r.returncode == 2 and "--rmi takes the whole stack down" in r.stderr
    r = stack("down", "nosuch", check=False)
    assert r.returncode != 0 and "nosuch" in r.stderr and "Traceback" not in r.stderr
    stack("up", "-d")
    assert services() == ["api", "db", "web"]


def test_compose_environment_variables_for_orphans_and_env_files(stack: CLI) -> None:
    """COMPOSE_IGNORE_ORPHANS silences the orphan warning, COMPOSE_REMOVE_ORPHANS
    removes them as --remove-orphans does, COMPOSE_ENV_FILES stands for --env-file."""
    two = (f"name: envs\nservices:\n  app:\n    {IMAGE}    command: [sleep, '1000']\n"
           "    stop_signal: SIGKILL\n    environment: {GREETING: '${GREETING:-none}'}\n"
           f"  old:\n    {IMAGE}    command: [sleep, '1000']\n    stop_signal: SIGKILL\n")
    (stack.cwd / "compose.yaml").write_text(two)
    (stack.cwd / "custom.env").write_text("GREETING=from-custom\n")
    stack("up", "-d", COMPOSE_ENV_FILES="custom.env")
    assert stack("exec", "-T", "app", "sh", "-c", "echo $GREETING").stdout == "from-custom\n"
    (stack.cwd / "compose.yaml").write_text(two.split("  old:")[0])
    r = stack("up", "-d", COMPOSE_ENV_FILES="custom.env")
    assert "orphan container envs-old-1" in r.stderr, r.stderr
    r = stack("up", "-d", COMPOSE_ENV_FILES="custom.env", COMPOSE_IGNORE_ORPHANS="true")
    assert "orphan" not in r.stderr, r.stderr
    assert "old" in stack("ps", "--services").stdout
    stack("up", "-d", COMPOSE_ENV_FILES="custom.env", COMPOSE_REMOVE_ORPHANS="1")
    assert stack("ps", "--services").stdout.split() == ["app"]
    r = stack("up", "-d", COMPOSE_REMOVE_ORPHANS="maybe", check=False)
    assert r.returncode == 2 and "COMPOSE_REMOVE_ORPHANS='maybe' is not a boolean" in r.stderr


def test_a_volume_subpath_and_tmpfs_options_are_what_the_service_gets(stack: CLI) -> None:
    """Both were read and dropped: the whole volume was mounted, the tmpfs had no size."""
    (stack.cwd / "compose.yaml").write_text(
        "name: subpaths\nservices:\n"
        f"  prep:\n    {IMAGE}    command: [sh, -c, 'mkdir -p /v/app/uploads /v/db;"
        " echo mine > /v/app/uploads/f; echo private > /v/db/f']\n"
        "    volumes: [shared:/v]\n"
        f"  app:\n    {IMAGE}    command: [sleep, '1000']\n    stop_signal: SIGKILL\n"
        "    depends_on: {prep: {condition: service_completed_successfully}}\n"
        "    tmpfs: ['/run:size=1m,uid=1000', '/jit:exec']\n"
        "    volumes:\n"
        "      - {type: volume, source: shared, target: /uploads,"
        " volume: {subpath: app/uploads}}\n"
        "volumes:\n  shared: {}\n")
    stack("up", "-d", "--wait")
    out = stack("exec", "-T", "app", "sh", "-c", "; ".join([
        "ls /uploads", "ls /uploads/.. | grep -c db",
        "df -k /run | tail -1 | awk '{print $2}'", "stat -c %u /run",
        "cp /bin/busybox /run/true; /run/true && echo run-exec || echo run-noexec",
        "cp /bin/busybox /jit/true; /jit/true && echo jit-exec || echo jit-noexec",
    ])).stdout.split()
    assert out == ["f", "0", "1024", "1000", "run-noexec", "jit-exec"]


def test_a_volume_subpath_that_is_not_there_is_said(stack: CLI) -> None:
    (stack.cwd / "compose.yaml").write_text(
        f"name: nosubpath\nservices:\n  app:\n    {IMAGE}    command: [sleep, '1000']\n"
        "    volumes: [{type: volume, source: data, target: /d,"
        " volume: {subpath: not/made}}]\nvolumes:\n  data: {}\n")
    r = stack("up", "-d", check=False)
    assert r.returncode != 0
    assert "cannot mount subpath 'not/made' of the volume for /d" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "ExceptionGroup" not in r.stderr


def test_a_volume_binding_a_host_directory_holds_its_data_there(stack: CLI) -> None:
    """`driver_opts: {type: none, o: bind, device: ./pgdata}` was dropped: the service
    started on an empty volume of stackd's instead of the data in ./pgdata."""
    (stack.cwd / "pgdata").mkdir()
    (stack.cwd / "pgdata" / "PG_VERSION").write_text("16\n")
    (stack.cwd / "compose.yaml").write_text(
        f"name: bindvol\nservices:\n  db:\n    {IMAGE}    command: [sleep, '1000']\n"
        "    stop_signal: SIGKILL\n    volumes: [data:/var/lib/postgresql/data]\n"
        "volumes:\n  data:\n    driver: local\n"
        "    driver_opts: {type: none, o: bind, device: ./pgdata}\n")
    stack("up", "-d")
    out = stack("exec", "-T", "db", "sh", "-c", "cat /var/lib/postgresql/data/PG_VERSION; "
                "echo written > /var/lib/postgresql/data/new").stdout
    assert out == "16\n"
    stack("down", "-v")  # the volume goes; the directory it bound keeps its data
    assert sorted(p.name for p in (stack.cwd / "pgdata").iterdir()) == ["PG_VERSION", "new"]


def test_enable_icc_false_isolates_containers_and_host_binding_sets_the_port_address(
        stack: CLI) -> None:
    """Both bridge options were read and dropped: the containers of an enable_icc:
    false network reached each other, and a port was published on every address."""
    from support.freeaddrs import free_port

    port = free_port()
    (stack.cwd / "compose.yaml").write_text(
        "name: icc\nservices:\n"
        f"  web:\n    {IMAGE}    command: [sh, -c, 'mkdir -p /www; echo ok > /www/index.html;"
        " exec httpd -f -p 8080 -h /www']\n"
        f"    ports: ['{port}:8080']\n    networks: [locked, open]\n"
        f"  client:\n    {IMAGE}    command: [sleep, '1000']\n    stop_signal: SIGKILL\n"
        "    networks: [locked, open]\n"
        "networks:\n  locked:\n    driver_opts:\n"
        "      com.docker.network.bridge.enable_icc: 'false'\n"
        "      com.docker.network.bridge.host_binding_ipv4: 127.0.0.1\n  open: {}\n")
    stack("up", "-d")
    ips = {net: stack("exec", "-T", "web", "sh", "-c",
                      f"ip -4 -o addr show {dev} | awk '{{print $4}}' | cut -d/ -f1"
                      ).stdout.strip() for net, dev in (("locked", "eth0"), ("open", "eth1"))}

    def reach(ip: str) -> str:
        return stack("exec", "-T", "client", "sh", "-c",
                     f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {ip} 8080 | tail -1"
                     ).stdout.strip() or "no"

    assert reach(ips["open"]) == "ok"
    assert reach(ips["locked"]) == "no"
    # The gateway's DNS still answers on the isolated network.
    assert stack("exec", "-T", "client", "nslookup", "web").returncode == 0
    assert stack("port", "web", "8080").stdout.strip() == f"127.0.0.1:{port}"
    assert fetch(port) == "ok\n"  # the published port answers, from the host
