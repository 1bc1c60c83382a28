"""Overlay records and the pure choices of cluster/overlay.py, without etcd."""

from __future__ import annotations

from ipaddress import IPv4Network

import pytest

from stackd.cluster import keys, overlay
from stackd.cluster.records import Endpoint, OverlayNetwork, StoreRecordError
from stackd.errors import ConflictError, UnavailableError
from stackd.netbridge.overlayplan import Peer


def test_overlay_records_round_trip_through_json() -> None:
    net = OverlayNetwork("shop_default", IPv4Network("10.224.0.0/16"), 4096, 4789, 24)
    assert OverlayNetwork.from_json("k", net.to_json()) == net
    ep = Endpoint("shop_default", "n1", "10.224.1.2", "02:42:0a:e0:01:02", "192.0.2.2",
                  "shop-web-1-0123abcd")
    assert Endpoint.from_json("k", ep.to_json()) == ep


@pytest.mark.parametrize(("value", "what"), [
    (b'{"network":"n","subnet":"10.224.0.0/33","vni":1,"port":1}', "not an IPv4 network"),
    (b'{"network":"n","subnet":"10.224.0.0/16","vni":0,"port":1}', "vni 0 is out of range"),
    (b'{"network":"n","subnet":"10.224.0.0/16","vni":16777216,"port":1}', "out of range"),
    (b'{"network":"n","subnet":"10.224.0.0/16","vni":5,"port":70000}', "port 70000"),
    (b'{"network":"n","subnet":"10.224.0.0/16","vni":5,"port":1,"block":8}', "block /8"),
    (b'{"network":"n","subnet":"10.224.0.0/16","vni":"5","port":1}', "'vni' is str"),
])
def test_hostile_overlay_networks_are_refused_naming_the_key(value: bytes, what: str) -> None:
    with pytest.raises(StoreRecordError, match=what) as e:
        OverlayNetwork.from_json("overlay/networks/n", value)
    assert "overlay/networks/n" in e.value.message


@pytest.mark.parametrize(("value", "what"), [
    (b'{"network":"n","node":"a","ip":"10.0.0.1","mac":"03:00:00:00:00:01","vtep":"1.2.3.4"}',
     "not a unicast MAC"),
    (b'{"network":"n","node":"a","ip":"10.0.0.1","mac":"zz","vtep":"1.2.3.4"}', "zz"),
    (b'{"network":"n","node":"a","ip":"10.0.0.300","mac":"02:00:00:00:00:01","vtep":"1.2.3.4"}',
     "not an IPv4 address"),
    (b'{"network":"n","node":"a","ip":"10.0.0.1","mac":"02:00:00:00:00:01"}', "no 'vtep'"),
    (b'[1]', "not a JSON object"),
])
def test_hostile_endpoints_are_refused(value: bytes, what: str) -> None:
    with pytest.raises(StoreRecordError, match=what):
        Endpoint.from_json("overlay/endpoints/n/a/10.0.0.1", value)


def test_overlay_keys() -> None:
    assert keys.overlay_network("shop_default") == "overlay/networks/shop_default"
    assert keys.overlay_endpoint("shop_default", "n1", "10.224.1.2") == \
        "overlay/endpoints/shop_default/n1/10.224.1.2"
    assert keys.overlay_endpoints("shop_default") == "overlay/endpoints/shop_default/"


def _net(name: str, subnet: str, vni: int) -> OverlayNetwork:
    return OverlayNetwork(name, IPv4Network(subnet), vni, 4789)


def test_choose_takes_the_first_subnet_free_of_other_networks_and_routes_and_a_free_vni(
        ) -> None:
    taken = [_net("a", "10.224.0.0/16", 4096), _net("b", "10.226.0.0/16", 4098)]
    routed = [IPv4Network("10.225.7.0/24")]
    assert overlay.choose("c", None, taken, routed) == (IPv4Network("10.227.0.0/16"), 4097)
    assert overlay.choose("c", None, [], []) == (IPv4Network("10.224.0.0/16"), 4096)


def test_choose_keeps_an_asked_subnet_unless_another_network_overlaps_it() -> None:
    taken = [_net("a", "10.224.0.0/16", 4096)]
    assert overlay.choose("c", IPv4Network("10.5.0.0/20"), taken, []) == \
        (IPv4Network("10.5.0.0/20"), 4097)
    with pytest.raises(ConflictError, match=r"overlaps 10\.224\.0\.0/16 of .* network a"):
        overlay.choose("c", IPv4Network("10.224.128.0/20"), taken, [])


def test_choose_says_when_the_pool_is_full() -> None:
    pool = IPv4Network("10.224.0.0/15")
    taken = [_net("a", "10.224.0.0/16", 4096), _net("b", "10.225.0.0/16", 4097)]
    with pytest.raises(UnavailableError, match="no free /16 left"):
        overlay.choose("c", None, taken, [], pool=pool)


def test_blocks_are_a_24_or_a_sixteenth_of_a_small_subnet() -> None:
    assert overlay.block_prefixlen(IPv4Network("10.224.0.0/16")) == 24
    assert overlay.block_prefixlen(IPv4Network("10.5.0.0/24")) == 28
    assert overlay.block_prefixlen(IPv4Network("10.5.0.0/28")) == 30


def test_endpoints_published_and_peers_programmed() -> None:
    local = [("net", "10.224.0.2", "02:42:0a:e0:00:02", "shop-web-1-00000000", "192.0.2.1")]
    want = overlay.desired_endpoints("n0", local)
    assert want == {"overlay/endpoints/net/n0/10.224.0.2": Endpoint(
        "net", "n0", "10.224.0.2", "02:42:0a:e0:00:02", "192.0.2.1", "shop-web-1-00000000")}
    other = Endpoint("net", "n1", "10.224.1.2", "02:42:0a:e0:01:02", "192.0.2.2")
    elsewhere = Endpoint("other", "n1", "10.225.1.2", "02:42:0a:e1:01:02", "192.0.2.2")
    assert overlay.peers_of("net", "n0", [*want.values(), other, elsewhere]) == \
        [Peer("10.224.1.2", "02:42:0a:e0:01:02", "192.0.2.2")]


def test_the_vxlan_port_is_kept_with_the_membership_and_checked() -> None:
    from stackd.cluster.config import ClusterConfig
    from stackd.errors import UsageError

    config = ClusterConfig(("http://127.0.0.1:1",), "n1", vxlan_port=14789)
    assert ClusterConfig.from_json(config.to_json()) == config
    assert ClusterConfig.from_json({"endpoints": ["http://127.0.0.1:1"], "name": "n1"}
                                   ).vxlan_port == 4789  # a membership saved before overlays
    with pytest.raises(UsageError, match="VXLAN port 0 is out of range"):
        ClusterConfig(("http://127.0.0.1:1",), "n1", vxlan_port=0)
