from __future__ import annotations

import pytest

from stackd.errors import SpecError
from stackd.netbridge import (
    Attachment,
    PortBinding,
    expand_ports,
    hosts_file_for,
    namespace_for,
    parse_network_mode,
    resolv_conf_for,
)
from stackd.netbridge.hostports import Listener, conflicts, parse_proc_net

PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1
   1: 0100007F:1F90 0100007F:D2C4 01 00000000:00000000 00:00000000 00000000     0        0 4243 1
"""
PROC_NET_TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:0035 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1
"""  # noqa: E501


def test_resolv_conf_points_at_the_gateway() -> None:
    assert resolv_conf_for("10.207.0.1") == "nameserver 10.207.0.1\noptions ndots:0\n"
    assert resolv_conf_for("10.207.0.1", search=["corp"], options=["timeout:1"]) == \
        "nameserver 10.207.0.1\nsearch corp\noptions ndots:0 timeout:1\n"


def test_hosts_file_has_own_name_and_extra_hosts() -> None:
    text = hosts_file_for("p-web-1", ["10.207.0.2"], ["db:10.1.1.1", "v6=::1"])
    assert text.splitlines()[2:] == ["10.207.0.2\tp-web-1", "10.1.1.1\tdb", "::1\tv6"]
    assert text.startswith("127.0.0.1\tlocalhost\n")
    with pytest.raises(SpecError, match="is not host:ip"):
        hosts_file_for("x", [], ["nohost"])


def test_network_modes() -> None:
    assert namespace_for(parse_network_mode(None), own_netns="/run/ns/a") == "/run/ns/a"
    assert namespace_for(parse_network_mode("host")) == "host"
    none = parse_network_mode("none")
    assert (none.own_namespace, none.attaches) == (True, False)
    svc = parse_network_mode("service:db")
    assert (svc.kind, svc.target, svc.own_namespace) == ("service", "db", False)
    assert namespace_for(svc, joined_netns="/run/ns/db") == "/run/ns/db"
    with pytest.raises(SpecError, match="db has no network namespace"):
        namespace_for(svc)
    with pytest.raises(SpecError, match="network_mode 'overlay' is not supported"):
        parse_network_mode("overlay")


def test_port_ranges_expand_one_to_one() -> None:
    assert expand_ports((8000, 8002), (80, 82), "udp") == [
        PortBinding(8000, 80, "udp"), PortBinding(8001, 81, "udp"), PortBinding(8002, 82, "udp")]
    with pytest.raises(SpecError, match="differ in length"):
        expand_ports((8000, 8002), (80, 80))
    with pytest.raises(SpecError, match="protocol 'sctp' is not supported"):
        PortBinding(1, 1, "sctp")
    assert str(PortBinding(8080, 80, host_ip="127.0.0.1")) == "127.0.0.1:8080->80/tcp"
    assert PortBinding(8080, 80, host_ip="::").any_address
    with pytest.raises(SpecError, match="host_ip 'localhost' is not an IPv4 address"):
        PortBinding(8080, 80, host_ip="localhost")


def test_mac_addresses_are_checked() -> None:
    assert Attachment("n", mac_address="02:00:00:00:07:42").mac_address == "02:00:00:00:07:42"
    for bad in ("02:00:00:00:07", "01:00:5e:00:00:01", "zz:00:00:00:00:00"):
        with pytest.raises(SpecError, match="is not a unicast MAC address"):
            Attachment("n", mac_address=bad)


def test_proc_net_listeners() -> None:
    assert parse_proc_net(PROC_NET_TCP, "tcp") == [Listener("tcp", "0.0.0.0", 2024, 4242)]
    assert parse_proc_net(PROC_NET_TCP6, "tcp") == [Listener("tcp", "::1", 53, 99)]
    assert conflicts("127.0.0.1", "0.0.0.0") and conflicts("", "10.0.0.1")
    assert not conflicts("127.0.0.1", "10.0.0.1")


def test_host_gateway_and_extra_nameservers() -> None:
    hosts = hosts_file_for("web", ["10.1.0.5"], ["host.docker.internal=host-gateway",
                                                 "db=10.9.8.7"], host_gateway="10.1.0.1")
    assert hosts.splitlines()[-2:] == ["10.1.0.1\thost.docker.internal", "10.9.8.7\tdb"]
    with pytest.raises(SpecError, match="no network gives a host gateway"):
        hosts_file_for("web", [], ["h=host-gateway"])
    assert resolv_conf_for("10.1.0.1", also=["1.1.1.1", "10.1.0.1"], search=["corp"]) == (
        "nameserver 10.1.0.1\nnameserver 1.1.1.1\nsearch corp\noptions ndots:0\n")
