"""The rules are a pure function of the store's rows: golden text, checked by `nft -c`."""

from __future__ import annotations

import subprocess

import pytest
from support.hostpackages import require_command

from stackd.netbridge.firewall import BridgeRules, DnatRule, render, render_delete

BRIDGES = [BridgeRules("stkab12b0000002", "10.207.1.0/24", internal=True),
           BridgeRules("stkab12b0000001", "10.207.0.0/24", internal=False)]
DNATS = [DnatRule("", 8080, "tcp", "10.207.0.2", 80, "web-1"),
         DnatRule("127.0.0.1", 5353, "udp", "10.207.0.3", 53, "dns-1")]

GOLDEN = """\
add table inet stackd
add chain inet stackd rab12_forward { type filter hook forward priority filter; policy accept; }
flush chain inet stackd rab12_forward
add chain inet stackd rab12_prerouting { type nat hook prerouting priority dstnat; policy accept; }
flush chain inet stackd rab12_prerouting
add chain inet stackd rab12_output { type nat hook output priority -100; policy accept; }
flush chain inet stackd rab12_output
add chain inet stackd rab12_postrouting { type nat hook postrouting priority srcnat; policy accept; }
flush chain inet stackd rab12_postrouting
add chain inet stackd rab12_ports
flush chain inet stackd rab12_ports
add rule inet stackd rab12_forward iifname "stkab12b0000001" oifname "stkab12b0000001" accept
add rule inet stackd rab12_forward oifname "stkab12b0000001" ct state established,related accept
add rule inet stackd rab12_forward oifname "stkab12b0000001" ct status dnat accept
add rule inet stackd rab12_forward oifname "stkab12b0000001" drop
add rule inet stackd rab12_forward iifname "stkab12b0000002" oifname "stkab12b0000002" accept
add rule inet stackd rab12_forward oifname "stkab12b0000002" ct state established,related accept
add rule inet stackd rab12_forward oifname "stkab12b0000002" ct status dnat accept
add rule inet stackd rab12_forward oifname "stkab12b0000002" drop
add rule inet stackd rab12_forward iifname "stkab12b0000001" accept
add rule inet stackd rab12_postrouting oifname "stkab12b0000001" ip saddr 127.0.0.0/8 masquerade
add rule inet stackd rab12_postrouting oifname "stkab12b0000001" ip saddr 10.207.0.0/24 ct status dnat masquerade
add rule inet stackd rab12_postrouting oifname != "stkab12b0000001" ip saddr 10.207.0.0/24 masquerade
add rule inet stackd rab12_forward iifname "stkab12b0000002" drop
add rule inet stackd rab12_postrouting oifname "stkab12b0000002" ip saddr 127.0.0.0/8 masquerade
add rule inet stackd rab12_postrouting oifname "stkab12b0000002" ip saddr 10.207.1.0/24 ct status dnat masquerade
add rule inet stackd rab12_prerouting fib daddr type local jump rab12_ports
add rule inet stackd rab12_output fib daddr type local jump rab12_ports
add rule inet stackd rab12_ports ip daddr 127.0.0.1 udp dport 5353 dnat ip to 10.207.0.3:53 comment "container dns-1"
add rule inet stackd rab12_ports tcp dport 8080 dnat ip to 10.207.0.2:80 comment "container web-1"
"""  # noqa: E501


def test_render_golden() -> None:
    assert render("ab12", BRIDGES, DNATS) == GOLDEN


def test_every_chain_carries_the_root_prefix() -> None:
    for line in render("ab12", BRIDGES, DNATS).splitlines()[1:]:
        assert line.split()[4].startswith("rab12_"), line


def test_drops_into_a_network_come_before_any_egress_accept() -> None:
    lines = render("ab12", BRIDGES, DNATS).splitlines()
    last_drop = max(i for i, line in enumerate(lines) if line.endswith('" drop')
                    and "oifname" in line)
    first_egress = min(i for i, line in enumerate(lines)
                       if "forward iifname" in line and line.endswith(" accept")
                       and "oifname" not in line)
    assert last_drop < first_egress


def test_delete_only_this_roots_chains() -> None:
    script = render_delete("ab12", ["rab12_forward", "rab12_ports", "rcd34_forward"])
    assert "rcd34" not in script
    assert script.splitlines()[-1] == "delete chain inet stackd rab12_ports"


@pytest.mark.root
def test_nft_accepts_the_script() -> None:
    require_command("nft", "nftables")
    r = subprocess.run(["nft", "-c", "-f", "-"], input=render("ab12", BRIDGES, DNATS),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


REPLICAS = [DnatRule("", 9000, "tcp", "10.207.0.4", 80, "p-web-3-aa", "p/web", ready=True),
            DnatRule("", 9000, "tcp", "10.207.0.2", 80, "p-web-1-aa", "p/web", ready=True),
            DnatRule("", 9000, "tcp", "10.207.0.3", 80, "p-web-2-aa", "p/web", ready=False)]


def _ports_lines(dnats: list[DnatRule]) -> list[str]:
    return [line for line in render("ab12", BRIDGES, dnats).splitlines()
            if line.startswith("add rule inet stackd rab12_ports")]


def test_replicas_share_one_rule_balanced_over_the_ready_ones() -> None:
    assert _ports_lines(REPLICAS) == [
        'add rule inet stackd rab12_ports tcp dport 9000 dnat ip to numgen inc mod 2 '
        'map { 0 : 10.207.0.2 . 80, 1 : 10.207.0.4 . 80 } comment "service p/web"']


def test_a_port_with_one_ready_replica_goes_straight_to_it() -> None:
    one = [DnatRule(d.host_ip, d.host_port, d.protocol, d.container_ip, d.container_port,
                    d.container_id, d.group, ready=d.container_id == "p-web-2-aa")
           for d in REPLICAS]
    assert _ports_lines(one) == [
        'add rule inet stackd rab12_ports tcp dport 9000 dnat ip to 10.207.0.3:80 '
        'comment "container p-web-2-aa"']


def test_a_port_with_no_ready_replica_balances_over_all() -> None:
    none = [DnatRule(d.host_ip, d.host_port, d.protocol, d.container_ip, d.container_port,
                     d.container_id, d.group, ready=False) for d in REPLICAS]
    assert _ports_lines(none) == [
        'add rule inet stackd rab12_ports tcp dport 9000 dnat ip to numgen inc mod 3 '
        'map { 0 : 10.207.0.2 . 80, 1 : 10.207.0.3 . 80, 2 : 10.207.0.4 . 80 } '
        'comment "service p/web"']


@pytest.mark.root
def test_nft_accepts_a_balanced_port() -> None:
    require_command("nft", "nftables")
    r = subprocess.run(["nft", "-c", "-f", "-"], input=render("ab12", BRIDGES, REPLICAS),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
