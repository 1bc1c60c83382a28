from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from stackd.errors import ConflictError, SpecError, UnavailableError
from stackd.netbridge import ipam

POOL = IPv4Network("10.207.0.0/16")


def test_first_free_subnet_skips_routed_and_taken() -> None:
    covering = IPv4Network("10.192.0.0/10")  # a host route over the whole pool
    assert ipam.choose_subnet(POOL, 24, [IPv4Network("10.207.0.0/24")], []) == \
        IPv4Network("10.207.1.0/24")
    assert ipam.choose_subnet(POOL, 24, [IPv4Network("10.207.0.0/23")],
                              [IPv4Network("10.207.2.0/24")]) == IPv4Network("10.207.3.0/24")
    with pytest.raises(UnavailableError, match=r"no free /24 left in the address pool"):
        ipam.choose_subnet(POOL, 24, [covering], [])


def test_requested_subnet_must_not_overlap() -> None:
    with pytest.raises(ConflictError, match=r"overlaps 10\.207\.0\.0/24 of network p_a"):
        ipam.check_subnet_free(IPv4Network("10.207.0.0/16"), [],
                               [("p_a", IPv4Network("10.207.0.0/24"))], network="b")
    with pytest.raises(ConflictError, match="which the host already routes"):
        ipam.check_subnet_free(IPv4Network("192.0.2.0/25"), [IPv4Network("192.0.2.0/24")], [],
                               network="b")


@pytest.mark.parametrize(("text", "message"), [
    ("10.1.2.3/24", "is not a subnet"),
    ("fd00::/64", "IPv6"),
    ("10.1.2.0/30", "too small"),
])
def test_bad_subnets_are_spec_errors(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        ipam.parse_subnet(text, what="network x subnet")


def test_addresses_lowest_free_never_gateway() -> None:
    net = IPv4Network("10.9.0.0/29")
    gw = ipam.default_gateway(net)
    assert gw == IPv4Address("10.9.0.1")
    assert ipam.pick_address(net, gw, [], network="n") == IPv4Address("10.9.0.2")
    assert ipam.pick_address(net, gw, ["10.9.0.2", "10.9.0.4"], network="n") == \
        IPv4Address("10.9.0.3")
    with pytest.raises(UnavailableError, match=r"all addresses of 10\.9\.0\.0/29 are in use"):
        ipam.pick_address(net, gw, [f"10.9.0.{i}" for i in range(2, 7)], network="n")


def test_static_addresses() -> None:
    net = IPv4Network("10.9.0.0/24")
    gw = IPv4Address("10.9.0.254")
    assert ipam.check_static_address(net, gw, "10.9.0.1", {}, network="n") == \
        IPv4Address("10.9.0.1")
    with pytest.raises(ConflictError, match="is the network's gateway"):
        ipam.check_static_address(net, gw, "10.9.0.254", {}, network="n")
    with pytest.raises(ConflictError, match="already used by container web-1"):
        ipam.check_static_address(net, gw, "10.9.0.9", {"10.9.0.9": "web-1"}, network="n")
    with pytest.raises(SpecError, match="not a host address"):
        ipam.check_static_address(net, gw, "10.9.0.255", {}, network="n")
    with pytest.raises(SpecError, match=r"gateway 10\.8\.0\.1 is not a host address"):
        ipam.check_gateway(net, "10.8.0.1", network="n")


def test_mac_tells_the_address() -> None:
    assert ipam.mac_for(IPv4Address("10.207.3.9")) == "02:42:0a:cf:03:09"


def test_a_network_made_before_ip_range_keeps_its_digest() -> None:
    """The fields ipam's ip_range and aux_addresses added are left out of the digest
    while unset: a changed digest would make every existing network again."""
    import hashlib
    import json

    from stackd.netbridge.model import NetworkSpec, network_hash

    spec = NetworkSpec(key="p_n", project="p", name="n", subnet="10.9.0.0/16")
    before = {"subnet": "10.9.0.0/16", "gateway": None, "internal": False,
              "driver": "bridge", "labels": {}, "driver_opts": {}}
    text = json.dumps(before, sort_keys=True, separators=(",", ":"))
    assert network_hash(spec) == hashlib.sha256(text.encode()).hexdigest()
    ranged = NetworkSpec(key="p_n", project="p", name="n", subnet="10.9.0.0/16",
                         ip_range="10.9.1.0/24")
    assert network_hash(ranged) != network_hash(spec)
