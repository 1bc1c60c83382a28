"""Status summaries and what is made of them, without etcd: the record and its
hostile forms, which summaries a node writes, the DNS records and the routing mesh's
rules as pure functions of every node's summaries."""

from __future__ import annotations

import json

import pytest
import trio

from stackd.cluster import keys
from stackd.cluster.mesh import mesh_backends
from stackd.cluster.records import PublishedPort, SlotStatus, StoreRecordError
from stackd.cluster.status import summaries
from stackd.cluster.statusdns import ClusterDns, remote_records
from stackd.daemon.clusterstatus import dnat_rules
from stackd.netbridge.dns import Records
from stackd.netbridge.firewall import DnatRule, render


def st(node: str, index: int, *, ready: bool = True, ip: str = "", service: str = "web",
       ports: tuple[PublishedPort, ...] = (), network: str = "shop_default") -> SlotStatus:
    ip = ip or f"10.192.{ord(node[-1]) - 48}.{index + 1}"
    return SlotStatus(node, "shop", service, index, f"shop-{service}-{index}",
                      "running" if ready else "exited", ready, {network: ip}, ports)


def test_a_status_record_round_trips_and_names_its_slot() -> None:
    s = st("n1", 2, ports=(PublishedPort(8080, "tcp", 80, "10.192.1.3"),
                           PublishedPort(53, "udp", 53, "10.192.1.3", "127.0.0.1"),
                           PublishedPort(9100, "tcp", 9100, "10.192.1.3", meshed=False)))
    key = keys.status("shop", s.slot)
    assert key == "status/shop/web-2"
    assert SlotStatus.from_json(key, s.to_json()) == s


@pytest.mark.parametrize("change", [
    {"state": "gone"}, {"ready": "yes"}, {"index": -1}, {"addresses": {"n": "10.0.0.300"}},
    {"addresses": {"n": "::1"}}, {"addresses": ["10.0.0.1"]},
    {"ports": [[0, "tcp", 80, "10.0.0.1", ""]]}, {"ports": [[80, "sctp", 80, "10.0.0.1", ""]]},
    {"ports": [[80, "tcp", 80, "10.0.0.1; flush ruleset", ""]]}, {"ports": [[True, "tcp", 80,
                                                                              "10.0.0.1", ""]]},
    {"container": 'x" ; drop'}, {"service": ""}, {"node": 3},
    {"ports": [[80, "tcp", 80, "10.0.0.1", "", True]]},
    {"ports": [[80, "tcp", 80, "10.0.0.1", "", "no", 1]]},
])
def test_a_hostile_status_record_is_refused_naming_its_key(change: dict[str, object]) -> None:
    raw = json.loads(st("n1", 1).to_json())
    raw.update(change)
    with pytest.raises(StoreRecordError, match="status/shop/web-1"):
        SlotStatus.from_json("status/shop/web-1", json.dumps(raw).encode())


def test_a_node_summarises_only_the_slots_it_runs_and_holds() -> None:
    old = st("n1", 1, ready=False)
    new = SlotStatus("n1", "shop", "web", 1, "shop-web-1", "running", True,
                     {"shop_default": "10.192.1.9"})
    facts = [old, new, st("n1", 2), st("n1", 3)]
    # web-3 has moved to another node (being stopped here): not ours to say.
    out = summaries(facts, {"shop": ["web-1", "web-2"]})
    assert sorted(out) == ["status/shop/web-1", "status/shop/web-2"]
    assert out["status/shop/web-1"] == new  # a recreate's two containers: the ready one


def test_dns_answers_other_nodes_ready_replicas_on_the_networks_here() -> None:
    statuses = [st("n1", 1), st("n2", 2), st("n3", 3), st("n3", 4, ready=False),
                st("n2", 1, service="db", network="shop_back")]
    table = remote_records(statuses, "n1", ["shop_default"])
    assert table == {
        ("shop_default", "web"): ("10.192.2.3", "10.192.3.4"),
        ("shop_default", "shop-web-2"): ("10.192.2.3",),
        ("shop_default", "shop-web-3"): ("10.192.3.4",),
    }


def test_the_dns_source_changes_only_what_changed_and_answers_with_local_replicas() -> None:
    records = Records()
    records.add("shop_default", "c1", "10.192.1.2", ["shop-web-1", "web"])
    flushed = []

    class Sink:
        def set_records(self, network_key: str, name: str, ips: object) -> None:
            records.set_records(network_key, name, ips)  # type: ignore[arg-type]

        async def flush(self) -> None:
            flushed.append(1)

    source = ClusterDns(Sink())
    both = remote_records([st("n2", 2), st("n3", 3)], "n1", ["shop_default"])
    trio.run(source.apply, both)
    assert sorted(records.lookup("10.192.1.2", "web") or []) == \
        ["10.192.1.2", "10.192.2.3", "10.192.3.4"]
    trio.run(source.apply, both)
    assert len(flushed) == 1  # nothing changed: no flush
    # n3's replica made unready: gone from answers, and its own name too.
    trio.run(source.apply, remote_records([st("n2", 2), st("n3", 3, ready=False)], "n1",
                                          ["shop_default"]))
    assert sorted(records.lookup("10.192.1.2", "web") or []) == ["10.192.1.2", "10.192.2.3"]
    assert records.lookup("10.192.1.2", "shop-web-3") is None


def test_the_mesh_balances_a_port_over_every_nodes_ready_replicas() -> None:
    def rep(node: str, i: int, ready: bool = True) -> SlotStatus:
        s = st(node, i, ready=ready)
        return SlotStatus(s.node, s.project, s.service, s.index, s.container, s.state,
                          s.ready, s.addresses,
                          (PublishedPort(8080, "tcp", 80, s.addresses["shop_default"]),
                           PublishedPort(9090, "tcp", 90, s.addresses["shop_default"],
                                         "127.0.0.1")))
    statuses = [rep("n1", 1), rep("n2", 2), rep("n3", 3), rep("n3", 4, ready=False)]
    backends = dnat_rules(mesh_backends(statuses, "n1"))
    # Other nodes' ready replicas; a port bound to one host address is not meshed.
    assert backends == [
        DnatRule("", 8080, "tcp", "10.192.2.3", 80, "shop-web-2", "shop/web", True, True),
        DnatRule("", 8080, "tcp", "10.192.3.4", 80, "shop-web-3", "shop/web", True, True)]
    local = DnatRule("", 8080, "tcp", "10.192.1.2", 80, "shop-web-1-abc", "shop/web", True)
    script = render("0123456789ab", [], [local, *backends])
    assert ("tcp dport 8080 dnat ip to numgen inc mod 3 map { 0 : 10.192.1.2 . 80, "
            "1 : 10.192.2.3 . 80, 2 : 10.192.3.4 . 80 }") in script
    assert "ct status dnat ip daddr { 10.192.2.3, 10.192.3.4 } masquerade" in script
    # A node with no replica of its own still answers, over the others'.
    alone = render("0123456789ab", [], dnat_rules(mesh_backends(statuses, "n4")))
    assert "numgen inc mod 3 map { 0 : 10.192.1.2 . 80, 1 : 10.192.2.3 . 80, " \
           "2 : 10.192.3.4 . 80 }" in alone
    # Off a cluster nothing changes: no masquerade rule for remote backends.
    assert "ct status dnat ip daddr" not in render("0123456789ab", [], [local])


def test_a_port_of_mode_host_answers_on_its_own_node_only() -> None:
    """Swarm's `mode: host` (a global agent's port on every node): meshed, each node's
    9100 balanced over every node's agent and answered with another node's metrics."""
    def agent(node: str) -> SlotStatus:
        s = st(node, 1, service="agent")
        return SlotStatus(s.node, s.project, s.service, s.index, s.container, s.state,
                          s.ready, s.addresses,
                          (PublishedPort(9100, "tcp", 9100, s.addresses["shop_default"],
                                         meshed=False),))
    assert mesh_backends([agent("n1"), agent("n2"), agent("n3")], "n1") == []
