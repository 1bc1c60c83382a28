"""A node's view of its assignments: the desired state its reconciler converges.

`assigned_to` reads every assignment, then follows a watch from the read's revision,
yielding this node's full set after each change (level, not edge: a consumer that
misses one still converges on the next). A broken watch is re-read, as an informer
relists.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing

import trio

from stackd.cluster import keys
from stackd.cluster.records import Assignment
from stackd.cluster.store import Store
from stackd.errors import UnavailableError

# project → slot names (<service>-<index>)
Desired = dict[str, frozenset[str]]


async def assigned_to(store: Store, node: str) -> AsyncGenerator[Desired, None]:
    while True:
        try:
            kvs, revision = await store.range(keys.ASSIGN)
            current = {kv.key: Assignment.from_json(kv.key, kv.value).node for kv in kvs}
            last = _mine(current, node)
            yield last
            async with aclosing(store.watch(keys.ASSIGN, revision + 1)) as events:
                async for ev in events:
                    if ev.type == "DELETE":
                        current.pop(ev.kv.key, None)
                    else:
                        current[ev.kv.key] = Assignment.from_json(ev.kv.key, ev.kv.value).node
                    now = _mine(current, node)
                    if now != last:
                        last = now
                        yield now
        except UnavailableError:
            await trio.sleep(1.0)


def _mine(current: dict[str, str], node: str) -> Desired:
    out: dict[str, set[str]] = {}
    for key, where in current.items():
        if where == node:
            project, _, slot = keys.tail(key, keys.ASSIGN).partition("/")
            out.setdefault(project, set()).add(slot)
    return {p: frozenset(s) for p, s in sorted(out.items())}
