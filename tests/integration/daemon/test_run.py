"""`stackd run`: one container like `docker run`, exit code passed through, nothing left."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from support.busybox import busybox_available, make_busybox_tar
from support.freeaddrs import free_port
from support.hostpackages import require
from support.netcleanup import teardown_networks

from stackd.errors import NotFoundError
from stackd.roots import Roots

pytestmark = pytest.mark.root
IMAGE = "bb:latest"


@pytest.fixture(scope="module")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require(busybox_available(), "busybox-static")
    work = tmp_path_factory.mktemp("busybox")
    return make_busybox_tar(work / "bb.tar", work)


@pytest.fixture
def runner(no_leaks: Roots, daemons, busybox_tar: Path):
    from stackd.images import ImageStore

    ImageStore(no_leaks).import_rootfs(busybox_tar, ref=IMAGE)
    daemons.start()

    def stackd(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, STACKD_ROOT=str(no_leaks.state), STACKD_RUN=str(no_leaks.run),
                   STACKD_NO_AUTOSTART="1")
        r = subprocess.run([sys.executable, "-m", "stackd", *args], env=env, text=True,
                           capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        assert not check or r.returncode == 0, r.stderr
        return r

    yield stackd
    with daemons.client() as c:
        for row in c.get("/v1/containers", all=True):
            try:
                if row["state"] == "running":  # no need to wait out a stop grace period
                    c.post(f"/v1/containers/{row['name']}/kill")
                c.post(f"/v1/containers/{row['name']}/remove")
            except NotFoundError:
                pass  # a --rm container removes itself once killed
    daemons.stop_all()
    assert teardown_networks(no_leaks) == []


def test_exit_code_and_output_pass_through(runner) -> None:
    r = runner("run", "--rm", IMAGE, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")


def test_options_reach_the_container(runner) -> None:
    r = runner("run", "--rm", "-e", "GREETING=hi there", "-w", "/tmp", "-u", "1000",
               "--name", "opts", IMAGE, "sh", "-c", 'echo "$GREETING|$(pwd)|$(id -u)|$(hostname)"',
               check=True)
    assert r.stdout.strip() == "hi there|/tmp|1000|opts"
    r = runner("run", "--rm", "--read-only", IMAGE, "touch", "/x")
    assert r.returncode == 1 and "Read-only file system" in r.stderr
    r = runner("run", "--rm", "--network", "none", IMAGE, "sh", "-c", "ls /sys/class/net",
               check=True)
    assert r.stdout.split() == ["lo"]
    r = runner("run", "--rm", "--entrypoint", "echo", IMAGE, "a", "b", check=True)
    assert r.stdout == "a b\n"


def test_published_port_and_detach(runner, no_leaks: Roots) -> None:
    port = free_port()
    r = runner("run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:80", IMAGE, "sh", "-c",
               "echo hello > /tmp/i; exec httpd -f -p 80 -h /tmp", check=True)
    assert r.stdout.strip() == "web"
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/i", timeout=1) as resp:
                assert resp.read() == b"hello\n"
                break
        except OSError:
            assert time.monotonic() < deadline, "published port never answered"
            time.sleep(0.05)


def test_mistakes_are_typed_errors(runner) -> None:
    r = runner("run", "--rm", "--pull", "never", "nosuch:image", "true")
    assert r.returncode == 1 and "nosuch" in r.stderr and "Traceback" not in r.stderr
    r = runner("run", "--rm", "-p", "eighty", IMAGE, "true")
    assert r.returncode == 2 and "-p 'eighty'" in r.stderr
    r = runner("run", "--rm", "-e", "=value", IMAGE, "true")
    assert r.returncode == 2 and "-e '=value' names no variable" in r.stderr
