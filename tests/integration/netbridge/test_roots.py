"""Two state roots on one host (parallel test runs, say) never touch each other."""

from __future__ import annotations

from ipaddress import IPv4Network

import pytest
from support.freeaddrs import free_port
from support.networld import World, leftovers, sh

from stackd.errors import ConflictError
from stackd.hostnames import nft_chain_prefix
from stackd.netbridge import Networks, NetworkSpec, PortBinding
from stackd.roots import Roots
from stackd.state.db import StateDB

pytestmark = pytest.mark.root


async def test_second_root_gets_its_own_subnet_chains_and_teardown(world: World) -> None:
    mine = await world.network("shared-name")
    other_roots = Roots(world.tmp / "other-state", world.tmp / "other-run").ensure()
    assert other_roots.id != world.roots.id
    db = StateDB.open(other_roots.state / "stackd.db")
    other = Networks(other_roots, db)
    try:
        theirs = await other.ensure_network(NetworkSpec("t_shared-name", "t", "shared-name"))
        assert theirs.bridge != mine.bridge
        assert not IPv4Network(theirs.subnet).overlaps(IPv4Network(mine.subnet))
        ruleset = sh("nft", "list", "table", "inet", "stackd").stdout
        assert nft_chain_prefix(other_roots.chain_id) in ruleset
        assert nft_chain_prefix(world.roots.chain_id) in ruleset

        port = PortBinding(free_port(), 80, "udp")
        await other.publish("their-web", [port], str(IPv4Network(theirs.subnet)[2]))
        with pytest.raises(ConflictError, match=rf"port {port.host_port}/udp is already "
                           r"published by another stackd instance \(container their-web\)"):
            world.nets.check_ports_free([port])
    finally:
        await other.teardown()
    assert leftovers(other_roots, db) == []
    db.close()
    # ours is untouched by the other's teardown
    assert nft_chain_prefix(world.roots.chain_id) in sh("nft", "list", "table", "inet",
                                                        "stackd").stdout
    assert sh("ip", "link", "show", mine.bridge).returncode == 0
