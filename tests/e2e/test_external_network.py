"""A network two stacks share, as Compose users make one: `network create NAME`, then
`external: true` in each stack. A stack whose external network is missing is refused
before anything of it is made."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import CLI, DEMO_IMAGE, torn_down
from support.freeaddrs import free_subnet

from stackd.roots import Roots

pytestmark = [pytest.mark.root, pytest.mark.slow]

NETWORK = "stkt-shared"


def _stack(project: str, service: str, key: str, *extra_networks: str) -> str:
    """`key`: the stack's name for the shared network; it is the host's name too
    (Compose's rule for an external one) unless a `name:` says otherwise."""
    own = "".join(f"  {n}: {{}}\n" for n in extra_networks)
    name = f"    name: {NETWORK}\n" if key != NETWORK else ""
    return f"""\
name: {project}
services:
  {service}:
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [sleep, "1000"]
    stop_signal: SIGKILL
    networks: [{key}{''.join(f', {n}' for n in extra_networks)}]
networks:
  {key}:
{name}    external: true
{own}"""


@pytest.fixture
def stacks(no_leaks: Roots, demo_image: str, tmp_path: Path) -> Iterator[tuple[CLI, CLI]]:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (one / "compose.yaml").write_text(_stack("one", "api", NETWORK, "own"))
    (two / "compose.yaml").write_text(_stack("two", "client", "shared"))
    with torn_down(CLI(no_leaks, one)) as first, torn_down(CLI(no_leaks, two)) as second:
        try:
            yield first, second
        finally:
            second("down", check=False)
            first("network", "rm", NETWORK, check=False)


def test_two_stacks_meet_on_a_network_made_with_network_create(
        stacks: tuple[CLI, CLI]) -> None:
    one, two = stacks
    refused = one("up", "-d", check=False)
    assert refused.returncode != 0
    assert f"external network {NETWORK} does not exist" in refused.stderr
    assert f"stackd network create {NETWORK}" in refused.stderr
    assert "Traceback" not in refused.stderr
    # Nothing of the stack was made: not its own network, not its container.
    assert one("network", "ls", "-q").stdout.split() == []
    assert one("ps", "-a", "-q").stdout.split() == []

    subnet = str(free_subnet())
    made = one("network", "create", NETWORK, "--subnet", subnet, "--label", "team=a")
    assert made.stdout.strip() == NETWORK
    again = one("network", "create", NETWORK, check=False)
    assert again.returncode != 0 and f"network {NETWORK} already exists" in again.stderr
    (net,) = json.loads(one("network", "inspect", NETWORK).stdout)
    assert (net["subnet"], net["project"], net["labels"]["team"]) == (subnet, "", "a")

    one("up", "-d")
    two("up", "-d")
    # Each stack's service is found by name from the other, over the shared network.
    ping = two("exec", "-T", "client", "ping", "-c", "1", "-W", "2", "api")
    assert "1 packets received" in ping.stdout
    in_use = one("network", "rm", NETWORK, check=False)
    assert in_use.returncode != 0 and "in use" in in_use.stderr
    # `down` leaves an external network alone; `rm` removes it once nothing uses it.
    one("down")
    two("down")
    assert one("network", "ls", "-q").stdout.split() == [NETWORK]
    assert one("network", "rm", NETWORK).stdout.strip() == NETWORK
    assert one("network", "ls", "-q").stdout.split() == []


@pytest.mark.parametrize("argv, said", [
    (["bad/name"], "invalid network name"),
    (["ok", "-d", "overlay"], "network driver 'overlay' is not supported"),
    (["ok", "--gateway", "10.9.9.1"], "--gateway and --ip-range need --subnet"),
    (["ok", "-o", "foo=1"], "-o 'foo' is not supported yet"),
    (["ok", "-o", "com.docker.network.bridge.enable_icc=maybe"], "must be true or false"),
    (["ok", "-o", "com.docker.network.bridge.host_binding_ipv4=127.0.0.1"],
     "is for a stack's own networks"),
    (["ok", "--label", "novalue"], "--label 'novalue' is not KEY=VALUE"),
    (["ok", "-o", "com.docker.network.driver.mtu=9"], "MTU 9 is out of range"),
    (["ok", "--subnet", "10.93.0.0/24", "--ip-range", "10.94.0.0/28"],
     "ip_range 10.94.0.0/28 is not inside subnet 10.93.0.0/24"),
    (["ok", "--subnet", "nonsense"], "--subnet 'nonsense' is not an IPv4 subnet"),
])
def test_network_create_mistakes_change_nothing(no_leaks: Roots, tmp_path: Path,
                                                argv: list[str], said: str) -> None:
    cli = CLI(no_leaks, tmp_path)
    r = cli("network", "create", *argv, check=False)
    assert r.returncode == 2 and said in r.stderr and "Traceback" not in r.stderr
    assert cli("network", "ls", "-q").stdout.split() == []


def test_an_external_volume_is_found_by_its_key_and_kept_by_down_v(
        no_leaks: Roots, demo_image: str, tmp_path: Path) -> None:
    """`volumes: {certs: {external: true}}` is the volume `certs` (`volume create
    certs`); missing, the stack is refused before its own network and volume are
    made; `down -v` removes the stack's own volume, never the external one."""
    (tmp_path / "compose.yaml").write_text(f"""\
name: extvol
services:
  app:
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [sh, -c, "echo hi > /certs/f; exec sleep 1000"]
    stop_signal: SIGKILL
    volumes: [certs:/certs, data:/data]
volumes:
  certs: {{external: true}}
  data: {{}}
""")
    with torn_down(CLI(no_leaks, tmp_path)) as cli:
        try:
            refused = cli("up", "-d", check=False)
            assert refused.returncode != 0 and "Traceback" not in refused.stderr
            assert "external volume certs does not exist" in refused.stderr
            assert "stackd volume create certs" in refused.stderr
            assert cli("volume", "ls", "-q").stdout.split() == []
            assert cli("network", "ls", "-q").stdout.split() == []
            cli("volume", "create", "certs")
            cli("up", "-d", "--wait")
            assert cli("exec", "-T", "app", "cat", "/certs/f").stdout == "hi\n"
            cli("down", "-v")
            assert cli("volume", "ls", "-q").stdout.split() == ["certs"]
        finally:
            cli("down", check=False)
            cli("volume", "rm", "certs", check=False)


def test_network_create_takes_enable_icc_false(no_leaks: Roots, tmp_path: Path) -> None:
    import json

    cli = CLI(no_leaks, tmp_path)
    cli("network", "create", "quiet", "-o", "com.docker.network.bridge.enable_icc=false")
    try:
        (found,) = json.loads(cli("network", "inspect", "quiet").stdout)
        assert found["labels"].get("io.stackd.isolated") == "true"
    finally:
        cli("network", "rm", "quiet")
