"""What a daemon hands its reconciler as the slots it holds: everything alone, only its
assignments as a member, and nothing at all before it has read them."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackd.cluster.config import ClusterConfig
from stackd.daemon.clustering import Membership
from stackd.errors import UnavailableError
from stackd.roots import Roots


def test_a_member_runs_only_its_assigned_slots_and_nothing_before_it_knows(
        tmp_path: Path) -> None:
    m = Membership(Roots(state=tmp_path / "state", run=tmp_path / "run"))
    assert m.slots_of("shop") is None  # no member: every slot, as on one host
    m.config = ClusterConfig(("http://127.0.0.1:1",), "node1")
    with pytest.raises(UnavailableError, match="has not read its slots"):
        m.slots_of("shop")  # its containers are left alone until etcd answers
    m._assigned({"shop": frozenset({"web-1", "web-3", "db-api-2"})})
    assert m.slots_of("shop") == {"web": frozenset({1, 3}), "db-api": frozenset({2})}
    assert m.slots_of("other") == {}  # a stack it holds nothing of: none of it here
    m._assigned({})
    assert m.slots_of("shop") == {}
