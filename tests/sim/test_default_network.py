"""`stackd run`'s default network outlives its last container by its linger time,
then goes; a run joining it meanwhile keeps it; the daemon's stop removes it unused."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import trio
import trio.testing

from stackd.daemon.single import DEFAULT_NETWORK, DefaultNetwork


@dataclass
class FakeNets:
    """The part of netbridge's Networks a DefaultNetwork uses: networks by key, each
    with the containers holding an address on it."""

    networks: dict[str, set[str]] = field(default_factory=dict)
    removed_at: list[float] = field(default_factory=list)

    def list(self) -> list[SimpleNamespace]:
        return [SimpleNamespace(key=k) for k in self.networks]

    def addresses(self, network_key: str) -> list[str]:
        return sorted(self.networks.get(network_key, ()))

    async def remove_network(self, key: str) -> None:
        self.removed_at.append(trio.current_time())
        del self.networks[key]


class FakeNetwork:
    def __init__(self) -> None:
        self.nets = FakeNets()
        self.nets.alloc = self.nets  # type: ignore[attr-defined]

    async def ensure_network(self, spec: object) -> None:
        self.nets.networks.setdefault(DEFAULT_NETWORK, set())

    async def connect(self, cid: str, attachments: object, ports: object) -> str:
        await trio.sleep(0.5)  # attaching takes a while: the network must not go meanwhile
        self.nets.networks[DEFAULT_NETWORK].add(cid)
        return f"/run/netns/{cid}"


async def test_kept_for_the_linger_then_removed(autojump_clock: trio.testing.MockClock
                                                ) -> None:
    network = FakeNetwork()
    default = DefaultNetwork(SimpleNamespace(network=network), linger=30.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(default.keep)
        await default.join("a", [])
        await trio.sleep(100)
        assert network.nets.removed_at == []  # in use: kept
        network.nets.networks[DEFAULT_NETWORK].clear()  # its container went at t=100.5
        await trio.sleep(10)
        await default.join("b", [])  # a run within the linger reuses it
        network.nets.networks[DEFAULT_NETWORK].clear()
        await trio.sleep(60)
        nursery.cancel_scope.cancel()
    # Unused from ~111 on, removed 30 s (+ the 1 s look) later, once.
    assert len(network.nets.removed_at) == 1
    assert 141 <= network.nets.removed_at[0] <= 143


async def test_removed_at_the_daemons_stop_if_unused(autojump_clock: trio.testing.MockClock
                                                     ) -> None:
    network = FakeNetwork()
    default = DefaultNetwork(SimpleNamespace(network=network), linger=30.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(default.keep)
        await default.join("a", [])
        network.nets.networks[DEFAULT_NETWORK].clear()
        await trio.sleep(5)
        nursery.cancel_scope.cancel()
    assert network.nets.removed_at and network.nets.removed_at[0] < 10
    assert DEFAULT_NETWORK not in network.nets.networks
