"""A node's status summaries against a real etcd: written when they change and only
then, bound to the node's lease (gone with it), a slot that moved never erased under
its new node, and keys left by the same lease before a daemon restart taken over."""

from __future__ import annotations

import trio
from support.etcdcluster import EtcdCluster

from stackd.cluster import keys, status
from stackd.cluster.records import SlotStatus
from stackd.cluster.store import KV, Store


def rec(node: str, index: int, ready: bool = True) -> SlotStatus:
    return SlotStatus(node, "shop", "web", index, f"shop-web-{index}",
                      "running" if ready else "exited", ready,
                      {"shop_default": f"10.192.0.{index + 1}"})


async def until(store: Store, key: str, pred) -> KV | None:  # type: ignore[no-untyped-def]
    with trio.fail_after(10):
        while True:
            kv = await store.get(key)
            if pred(kv):
                return kv
            await trio.sleep(0.02)


async def test_summaries_follow_the_facts_and_the_lease(etcd1: EtcdCluster) -> None:
    async with Store(etcd1.endpoints) as store:
        mine, theirs = await store.grant(30), await store.grant(30)
        # Left by this lease before a restart, for a slot no longer run: taken over.
        await store.put(keys.status("shop", "web-9"), rec("n1", 9).to_json(), mine)
        facts = [rec("n1", 1), rec("n1", 2)]
        assigned = {"shop": ["web-1", "web-2"]}
        poke = trio.Event()

        async def changed() -> None:
            await poke.wait()

        def tell() -> None:
            nonlocal poke
            poke.set()
            poke = trio.Event()

        k1, k2 = keys.status("shop", "web-1"), keys.status("shop", "web-2")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(status.publish, store, mine, lambda: facts, changed,
                               lambda: assigned)
            kv = await until(store, k2, lambda kv: kv is not None)
            assert kv is not None and kv.lease == mine
            assert SlotStatus.from_json(k2, kv.value) == rec("n1", 2)
            await until(store, keys.status("shop", "web-9"), lambda kv: kv is None)
            # A pass with nothing changed writes nothing.
            before = (await store.get(k1)).mod_revision  # type: ignore[union-attr]
            tell()
            await trio.sleep(status.DEBOUNCE * 4)
            assert (await store.get(k1)).mod_revision == before  # type: ignore[union-attr]
            # A replica turning unready is written.
            facts[0] = rec("n1", 1, ready=False)
            tell()
            await until(store, k1, lambda kv: kv is not None and
                        not SlotStatus.from_json(k1, kv.value).ready)
            # web-2 moves to n2, which writes it before n1 has stopped its copy: n1's
            # delete does not erase it.
            await store.put(k2, rec("n2", 2).to_json(), theirs)
            assigned = {"shop": ["web-1"]}
            facts.pop()
            tell()
            await trio.sleep(status.DEBOUNCE * 4)
            kv = await store.get(k2)
            assert kv is not None and kv.lease == theirs
            nursery.cancel_scope.cancel()
        # The node's lease ends (it died): its summaries go with it, n2's stay.
        await store.revoke(mine)
        assert await store.get(k1) is None
        assert (await store.get(k2)) is not None
        await store.revoke(theirs)
