"""`stackd port SERVICE PRIVATE_PORT` prints what `docker compose port` prints, for the
scripts that cut a host port out of it; a port not published is an error naming it."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_helpers import DEMO_IMAGE, stack_dir
from support.freeaddrs import free_port

from stackd.cli.cmd_port import published
from stackd.roots import Roots

pytestmark = pytest.mark.root


def test_published_picks_the_binding_of_that_port_and_protocol() -> None:
    rows = [{"name": "p-web-1", "ports": ["0.0.0.0:8080->80/tcp", "127.0.0.1:53->53/udp"]},
            {"name": "p-web-2", "ports": ["0.0.0.0:8081->80/tcp"]}]
    assert published(rows, "p-web-1", 80, "tcp") == ["0.0.0.0:8080"]
    assert published(rows, "p-web-1", 53, "udp") == ["127.0.0.1:53"]
    assert published(rows, "p-web-1", 53, "tcp") == []


def test_port_prints_the_host_address_as_compose_does(no_leaks: Roots, demo_image: str,
                                                       tmp_path: Path) -> None:
    tcp, udp = free_port(), free_port()
    compose = (f"name: ports\nservices:\n  web:\n    image: {DEMO_IMAGE}\n"
               "    command: [sleep, '1000']\n    stop_signal: SIGKILL\n"
               f"    ports: ['127.0.0.1:{tcp}:80', '{udp}:53/udp']\n")
    with stack_dir(no_leaks, tmp_path, "ports", compose) as cli:
        cli("up", "-d")
        assert cli("port", "web", "80").stdout == f"127.0.0.1:{tcp}\n"
        assert cli("port", "--protocol", "udp", "web", "53").stdout == f"0.0.0.0:{udp}\n"
        r = cli("port", "web", "81", check=False)
        assert r.returncode == 1
        assert r.stderr.startswith("stackd: no port 81/tcp is published for container "
                                   "ports-web-1")
        r = cli("port", "--index", "2", "web", "80", check=False)
        assert r.returncode == 1 and "no running container ports-web-2" in r.stderr
