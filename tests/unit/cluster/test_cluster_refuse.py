"""Lifecycle verbs on a member's stacks: refused, naming the verb, the node and what
does it cluster-wide; alone (no cluster) nothing is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackd.cluster.config import ClusterConfig
from stackd.daemon.clustering import ClusterStackVerbError, Membership
from stackd.roots import Roots


def test_lifecycle_verbs_are_refused_on_a_member_with_what_to_do(tmp_path: Path) -> None:
    m = Membership(Roots(state=tmp_path / "state", run=tmp_path / "run"))
    m._refuse_verb("stop", "shop")  # alone: one host's stack, nothing refused
    m.config = ClusterConfig(("http://127.0.0.1:1",), "node1")
    with pytest.raises(ClusterStackVerbError) as e:
        m._refuse_verb("restart", "shop")
    assert "`stackd restart`" in e.value.message and "'node1'" in e.value.message
    assert "stackd scale" in (e.value.hint or "") and "stackd down" in (e.value.hint or "")
