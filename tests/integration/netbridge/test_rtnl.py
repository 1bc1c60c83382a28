"""rtnl.py's hand-packed requests, as `ip` sees their result, in two namespaces of the
test's own (a bridge in one stands for the host's): nothing on the host is touched."""

from __future__ import annotations

import errno
import json
import subprocess
from pathlib import Path

import pytest

from stackd.netbridge import netns, rtnl
from stackd.netbridge.links import if_index

pytestmark = pytest.mark.root


def ip(ns: Path, *args: str) -> list[dict]:
    out = subprocess.run(["nsenter", f"--net={ns}", "ip", "-j", *args],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out or "[]")


def bridge_port(ns: Path, device: str) -> dict:
    (port,) = ip(ns, "-d", "link", "show", device)
    return port["linkinfo"]["info_slave_data"]


@pytest.fixture
def two_namespaces(tmp_path: Path):
    outer, inner = tmp_path / "outer", tmp_path / "inner"
    netns.create(outer)
    netns.create(inner)
    try:
        subprocess.run(["nsenter", f"--net={outer}", "ip", "link", "add", "br0", "type",
                        "bridge"], check=True)
        yield outer, inner
    finally:
        netns.remove(outer)
        netns.remove(inner)


def test_a_veth_pair_with_address_mac_mtu_and_default_route(two_namespaces) -> None:
    outer, inner = two_namespaces
    with netns.entered(outer), rtnl.Socket() as sock:
        bridge = if_index("br0")
        assert bridge is not None
        with open(inner, "rb") as fd:
            sock.add_veth(ifname="vhost", mtu=1400, master=bridge, peer_ifname="eth0",
                          peer_mac="02:42:0a:00:00:07", peer_netns_fd=fd.fileno())
        host_end = if_index("vhost")
        assert host_end is not None
        assert bridge_port(outer, "vhost")["hairpin"] is False
        sock.set_link(host_end, up=True, alias="owner-1", hairpin=True)
        # the same pair again: the kernel's refusal arrives as its errno
        with open(inner, "rb") as fd, pytest.raises(rtnl.RtnlError) as refused:
            sock.add_veth(ifname="vhost", mtu=1400, master=bridge, peer_ifname="eth0",
                          peer_mac="02:42:0a:00:00:07", peer_netns_fd=fd.fileno())
        assert refused.value.errno == errno.EEXIST
    with netns.entered(inner), rtnl.Socket() as sock:
        sock.set_link(1, up=True)
        eth0 = if_index("eth0")
        assert eth0 is not None
        sock.add_address(eth0, "10.0.0.7", 24)
        sock.set_link(eth0, up=True)
        sock.replace_default_route("10.0.0.1")
        sock.replace_default_route("10.0.0.1")  # replace: twice is fine

    (host,) = ip(outer, "link", "show", "vhost")
    assert host["master"] == "br0" and host["mtu"] == 1400 and host["ifalias"] == "owner-1"
    assert "UP" in host["flags"]
    assert bridge_port(outer, "vhost")["hairpin"] is True
    assert bridge_port(outer, "vhost")["isolated"] is False
    with netns.entered(outer), rtnl.Socket() as sock:
        sock.set_link(host_end, up=True, hairpin=True, isolated=True)
    assert bridge_port(outer, "vhost")["isolated"] is True
    assert bridge_port(outer, "vhost")["hairpin"] is True
    (link,) = ip(inner, "link", "show", "eth0")
    assert link["address"] == "02:42:0a:00:00:07" and link["mtu"] == 1400
    assert "UP" in link["flags"]
    (addr,) = ip(inner, "-4", "addr", "show", "eth0")
    assert [(a["local"], a["prefixlen"]) for a in addr["addr_info"]] == [("10.0.0.7", 24)]
    routes = ip(inner, "route", "show", "default")
    assert [(r["gateway"], r["dev"]) for r in routes] == [("10.0.0.1", "eth0")]
    assert "UP" in ip(inner, "link", "show", "lo")[0]["flags"]

    with netns.entered(outer), rtnl.Socket() as sock:
        sock.delete_link(host_end)  # takes its peer with it
        with pytest.raises(rtnl.RtnlError) as gone:
            sock.delete_link(host_end)
        assert gone.value.errno == errno.ENODEV
    assert [li["ifname"] for li in ip(inner, "link", "show")] == ["lo"]
