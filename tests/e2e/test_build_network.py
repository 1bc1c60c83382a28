"""Build steps have a network, as Docker's do (docs/images.md, "Builds"): a RUN can
fetch what a Dockerfile installs — here from an HTTP server on the host, reached
through the build network's gateway — through `stackd build` and `up --build` alike.
`RUN --network=none` has loopback only; a stack's own network stays out of reach; the
step's address is let go when the step ends."""

from __future__ import annotations

import functools
import http.server
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from e2e_helpers import CLI, DEMO_IMAGE, stack_dir, torn_down

from stackd.images import ImageStore
from stackd.images.build.mergedview import lookup
from stackd.roots import Roots

pytestmark = pytest.mark.root

# The resolver must serve the step from its first instruction: on a root's first
# build the build network (and the resolver) is made for it.
FETCH = ("gw=$(ip route | awk '/^default/ {print $3}') && "
         "(nslookup probe.invalid \"$gw\" 2>&1 | grep -q \"can't find\" "
         "&& echo served > /dns || echo refused > /dns) && "
         "wget -q -O /pkg.txt \"http://$gw:$PORT/pkg.txt\" && cp /etc/resolv.conf /resolv "
         "&& echo \"$gw\" > /gw")


@contextmanager
def file_server(directory: Path) -> Iterator[int]:
    """An HTTP server for `directory` on the host (a build step reaches it at its
    network's gateway); its port."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(directory))
    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[int]:
    d = tmp_path / "served"
    d.mkdir()
    (d / "pkg.txt").write_text("package-7f3a\n")
    with file_server(d) as port:
        yield port


def read(roots: Roots, ref: str, path: str) -> str | None:
    host = lookup(ImageStore(roots).get(ref).layer_dirs, path)
    return Path(host).read_text() if host is not None else None


def build_holders(roots: Roots) -> list[str]:
    from stackd.daemon.desired_store import db_path
    from stackd.state.allocations import Allocations
    from stackd.state.db import StateDB

    return [a.container_id for a in Allocations(StateDB.open(db_path(roots.state))).addresses()
            if a.container_id.startswith("build-")]


def let_go(roots: Roots) -> list[str]:
    """The build steps still holding an address once the daemon had a moment: it lets
    a step's go when the step's stream closes, after the client has moved on."""
    deadline = time.monotonic() + 5
    while (held := build_holders(roots)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return held


@pytest.fixture
def cli(no_leaks: Roots, demo_image: str, tmp_path: Path) -> Iterator[CLI]:
    work = tmp_path / "netbuild"
    work.mkdir()
    with torn_down(CLI(no_leaks, work)) as c:
        yield c


def test_stackd_build_steps_reach_out_and_none_stays_on_loopback(cli: CLI, served: int
                                                                  ) -> None:
    (cli.cwd / "Dockerfile").write_text(
        f"FROM {DEMO_IMAGE}\nARG PORT\nRUN {FETCH}\n"
        "RUN --network=none sh -c 'ip -o link | grep -c eth0 > /eth0s; "
        "wget -q -T 2 -O /x \"http://$(cat /gw):$PORT/pkg.txt\" || echo unreachable > /none'\n")
    cli("build", "-q", "-t", "net:1", "--build-arg", f"PORT={served}", ".")
    assert read(cli.roots, "net:1", "pkg.txt") == "package-7f3a\n"
    gw = (read(cli.roots, "net:1", "gw") or "").strip()
    assert f"nameserver {gw}\n" in (read(cli.roots, "net:1", "resolv") or "")
    assert read(cli.roots, "net:1", "eth0s") == "0\n"
    assert read(cli.roots, "net:1", "none") == "unreachable\n"
    assert read(cli.roots, "net:1", "dns") == "served\n"
    assert let_go(cli.roots) == []  # each step's address let go after it


def test_up_build_steps_have_the_network_and_no_stack_network(no_leaks: Roots, demo_image: str,
                                                              tmp_path: Path, served: int
                                                              ) -> None:
    compose = ("name: shop\nservices:\n"
               "  web:\n    image: " + DEMO_IMAGE + "\n"
               "    command: [httpd, -f, -p, '8080', -h, /etc]\n    stop_signal: SIGKILL\n"
               "  app:\n    build:\n      context: .\n      args: {PORT: '" + str(served) + "'}\n"
               "    command: [sleep, '1000']\n    stop_signal: SIGKILL\n    profiles: [later]\n")
    with stack_dir(no_leaks, tmp_path, "shop", compose) as cli:
        cli("up", "-d", "web")
        web_ip = cli("exec", "-T", "web", "hostname", "-i").stdout.split()[0]
        (cli.cwd / "Dockerfile").write_text(
            f"FROM {DEMO_IMAGE}\nARG PORT\nARG WEB\nRUN {FETCH}\n"
            "RUN wget -q -T 2 -O /x \"http://$WEB:8080/passwd\" || echo blocked > /stack\n")
        (cli.cwd / "compose.yaml").write_text(compose.replace(
            "args: {PORT", f"args: {{WEB: '{web_ip}', PORT"))
        cli("--profile", "later", "up", "-d", "--build", "app")
        out = cli("exec", "-T", "app", "cat", "/pkg.txt", "/stack", "/dns").stdout.split()
        assert out == ["package-7f3a", "blocked", "served"]
        assert let_go(cli.roots) == []


def test_without_a_daemon_to_ask_a_build_says_so_and_runs_on_loopback(
        no_leaks: Roots, demo_image: str, tmp_path: Path, served: int) -> None:
    cli = CLI(no_leaks, tmp_path)
    (tmp_path / "Dockerfile").write_text(
        f"FROM {DEMO_IMAGE}\nRUN ip -o link | grep -c eth0 > /eth0s || true\n")
    r = cli("build", "-q", "-t", "lo:1", ".", STACKD_NO_AUTOSTART="1")
    assert "RUN steps have no network (loopback only)" in r.stderr
    assert read(no_leaks, "lo:1", "eth0s") == "0\n"
    assert cli.daemon_pid() is None


def test_build_network_none_from_the_stack_file_or_the_command_line(
        no_leaks: Roots, demo_image: str, tmp_path: Path) -> None:
    compose = "name: quiet\nservices:\n  app:\n    build: {context: ., network: none}\n"
    with stack_dir(no_leaks, tmp_path, "quiet", compose) as cli:
        (cli.cwd / "Dockerfile").write_text(
            f"FROM {DEMO_IMAGE}\nRUN ip -o link | grep -c eth0 > /eth0s || true\n"
            "RUN --network=default ip -o link | grep -c eth0 > /own || true\n")
        cli("build", "-q", "-t", "q:1", "app")
        assert read(no_leaks, "q:1", "eth0s") == "0\n"  # the service's build.network
        assert read(no_leaks, "q:1", "own") == "1\n"  # a RUN's own --network wins
        cli("build", "-q", "--network", "none", "-t", "q:2", ".")
        assert read(no_leaks, "q:2", "eth0s") == "0\n"
        assert read(no_leaks, "q:2", "own") == "1\n"


def test_build_extra_hosts_shm_size_and_ulimits_reach_each_step(
        no_leaks: Roots, demo_image: str, tmp_path: Path) -> None:
    compose = ("name: opts\nservices:\n  app:\n    build:\n      context: .\n"
               "      extra_hosts: ['gitlab.corp=10.9.8.7', 'host.docker.internal=host-gateway']\n"
               "      shm_size: 96m\n      ulimits: {nofile: {soft: 1234, hard: 2345}}\n"
               "    command: [sleep, '1000']\n    stop_signal: SIGKILL\n")
    with stack_dir(no_leaks, tmp_path, "opts", compose) as cli:
        (cli.cwd / "Dockerfile").write_text(
            f"FROM {DEMO_IMAGE}\n"
            "RUN grep -E 'gitlab.corp|host.docker.internal' /etc/hosts > /hosts; "
            "df -k /dev/shm | tail -1 | awk '{print $2}' > /shm; ulimit -n > /nofile; "
            "ip route | awk '/^default/ {print $3}' > /gw\n")
        for how in (("build", "-q", "-t", "opts:cli", "app"), ("up", "-d", "--build")):
            cli(*how)
            ref = "opts:cli" if how[0] == "build" else "opts-app"
            hosts = (read(no_leaks, ref, "hosts") or "").split("\n")
            gw = (read(no_leaks, ref, "gw") or "").strip()
            assert hosts[:2] == ["10.9.8.7\tgitlab.corp", f"{gw}\thost.docker.internal"], hosts
            assert read(no_leaks, ref, "shm") == f"{96 * 1024}\n"
            assert read(no_leaks, ref, "nofile") == "1234\n"
