"""The pure part of overlay forwarding: endpoints → desired FDB/neighbour entries →
the difference from what a VXLAN device has."""

from __future__ import annotations

from stackd.netbridge.overlayplan import (
    ZERO_MAC,
    Changes,
    Fdb,
    Forwarding,
    Neigh,
    OverlayLease,
    Peer,
    desired,
    diff,
)

ME, B, C = "192.0.2.1", "192.0.2.2", "192.0.2.3"
B1 = Peer("10.224.1.2", "02:42:0a:e0:01:02", B)
B2 = Peer("10.224.1.3", "02:42:0a:e0:01:03", B)
C1 = Peer("10.224.2.2", "02:42:0a:e0:02:02", C)
MINE = Peer("10.224.0.2", "02:42:0a:e0:00:02", ME)


def test_desired_has_one_flood_entry_per_remote_node_and_one_entry_per_remote_container(
        ) -> None:
    want = desired([MINE, B1, B2, C1], ME)
    assert want.fdb == {Fdb(ZERO_MAC, B), Fdb(ZERO_MAC, C), Fdb(B1.mac, B), Fdb(B2.mac, B),
                        Fdb(C1.mac, C)}
    assert want.neigh == {Neigh(B1.ip, B1.mac), Neigh(B2.ip, B2.mac), Neigh(C1.ip, C1.mac)}


def test_own_containers_and_no_peers_give_nothing() -> None:
    assert desired([MINE], ME) == Forwarding()
    assert desired([], ME) == Forwarding()


def test_a_mac_published_twice_lives_in_one_place_whatever_the_order() -> None:
    moved = Peer(B1.ip, B1.mac, C)  # the same container seen behind two VTEPs
    assert desired([B1, moved], ME) == desired([moved, B1], ME)
    assert sum(f.mac == B1.mac for f in desired([B1, moved], ME).fdb) == 1


def test_diff_adds_what_is_missing_and_removes_what_is_stale() -> None:
    have = desired([B1, B2, C1], ME)
    want = desired([B1, C1, Peer("10.224.2.3", "02:42:0a:e0:02:03", C)], ME)
    changes = diff(want, have)
    assert changes == Changes(
        fdb_remove=(Fdb(B2.mac, B),), fdb_add=(Fdb("02:42:0a:e0:02:03", C),),
        neigh_remove=(Neigh(B2.ip, B2.mac),), neigh_add=(Neigh("10.224.2.3", "02:42:0a:e0:02:03"),))


def test_a_node_gone_takes_its_flood_entry_and_every_container_of_it_with_it() -> None:
    changes = diff(desired([C1], ME), desired([B1, B2, C1], ME))
    assert set(changes.fdb_remove) == {Fdb(ZERO_MAC, B), Fdb(B1.mac, B), Fdb(B2.mac, B)}
    assert set(changes.neigh_remove) == {Neigh(B1.ip, B1.mac), Neigh(B2.ip, B2.mac)}
    assert not changes.fdb_add and not changes.neigh_add


def test_a_moved_mac_is_removed_at_its_old_vtep_and_added_at_the_new() -> None:
    changes = diff(desired([Peer(B1.ip, B1.mac, C), C1], ME), desired([B1, C1], ME))
    assert Fdb(B1.mac, B) in changes.fdb_remove and Fdb(B1.mac, C) in changes.fdb_add


def test_applying_the_diff_then_planning_again_is_empty() -> None:
    gone = "192.0.2.9"
    have = Forwarding(frozenset({Fdb(ZERO_MAC, gone), Fdb("02:00:00:00:00:09", gone)}),
                      frozenset({Neigh("10.224.9.9", "02:00:00:00:00:09")}))
    want = desired([B1, C1], ME)
    changes = diff(want, have)
    after = Forwarding((have.fdb - set(changes.fdb_remove)) | set(changes.fdb_add),
                       (have.neigh - set(changes.neigh_remove)) | set(changes.neigh_add))
    assert after == want
    assert not diff(want, after)


def test_a_lease_survives_its_label() -> None:
    lease = OverlayLease("10.224.0.0/16", "10.224.3.0/24", 4097, 4789, "192.0.2.1")
    assert OverlayLease.from_label(lease.to_label()) == lease
