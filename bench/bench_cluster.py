"""Cluster placement at scale against a real etcd: 1,000 simulated nodes, 10,000 slots.

The nodes are records and liveness keys in the store (one lease keeps them all
alive; a node "dies" by its liveness key going, which is what its lease expiring
does). The leader is the real one: campaign, then `place_all` passes as the watch
would trigger them. Measured: the first placement of every stack; one node down
(its ~10 slots moved); one stack scaled up by 10; and a pass with nothing to do.
For each: wall time, the CPU time of the pure plan (assign.plan), etcd requests,
transactions and keys written. Goals: a change is placed within 1 s of the pass
starting, writes per change = slots changed. Never asserts on time.

    .venv/bin/python bench/bench_cluster.py [--nodes 1000] [--stacks 100] [--replicas 100]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from contextlib import aclosing
from pathlib import Path
from types import MappingProxyType

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.etcdcluster import start_etcd

from stackd.cluster import assign, keys, leader
from stackd.cluster.records import NodeRecord, ServiceRecord, StackRecord
from stackd.cluster.store import Put, Store
from stackd.scheduler import Resources

GiB = 1 << 30


def stack(project: str, replicas: int) -> StackRecord:
    return StackRecord(project, (ServiceRecord("web", replicas, Resources(cpus=0.1,
                                                                          memory=64 << 20)),))


async def measure(store: Store, term: int, label: str, results: dict[str, object]) -> None:
    """One leader pass (`place_all`), and beside it its two parts timed alone: the
    snapshot read (one txn of four ranges) and the pure plan (`assign.plan_all`)."""
    t = time.perf_counter()
    snap = await leader.snapshot(store)
    read = time.perf_counter() - t
    current = {p: {slot: a.node for slot, (a, _) in slots.items()}
               for p, slots in snap.assigned.items()}
    t = time.process_time()
    assign.plan_all(snap.stacks, snap.usable(), current)
    plan_cpu = time.process_time() - t
    before = store.requests
    t = time.perf_counter()
    stats = await leader.place_all(store, term)
    wall = time.perf_counter() - t
    requests = store.requests - before
    results[label] = {"pass_wall_s": round(wall, 3), "snapshot_wall_s": round(read, 3),
                      "plan_cpu_s": round(plan_cpu, 3), "requests": requests,
                      "txns": stats.txns, "keys_written": stats.writes}
    print(f"{label:<22} pass {wall:6.3f} s  (snapshot {read:6.3f} s, plan {plan_cpu:6.3f} s "
          f"CPU)  {requests:4} requests  {stats.txns:4} txns  {stats.writes:6} keys written",
          flush=True)


async def end_to_end(store: Store, term: int, victim: str,
                     results: dict[str, object]) -> None:
    """The leader as it runs (`lead`: one read, then its watch-fed view): from a node's
    liveness key going to its last slot written elsewhere."""
    async with Store(store.endpoints, prefix=store.prefix) as observer, \
            trio.open_nursery() as nursery:
        nursery.start_soon(leader.lead, store, term)
        await trio.sleep(3)  # its first read and pass (nothing to do) are not measured
        kvs, rev = await observer.range(keys.ASSIGN)
        held = {kv.key for kv in kvs if kv.json()["node"] == victim}
        before = store.requests
        t = time.perf_counter()
        await observer.delete(keys.alive(victim))
        async with aclosing(observer.watch(keys.ASSIGN, rev + 1)) as events:
            async for ev in events:
                held.discard(ev.kv.key)
                if not held:
                    break
        wall = time.perf_counter() - t
        requests = store.requests - before
        nursery.cancel_scope.cancel()
    results["one node down, lead()"] = {"wall_s": round(wall, 3), "leader_requests": requests}
    print(f"{'one node down, lead()':<22} {wall:6.3f} s from the liveness key's deletion to "
          f"its slots elsewhere; {requests} leader requests (no reads)", flush=True)


async def run(endpoints: list[str], args: argparse.Namespace) -> dict[str, object]:
    results: dict[str, object] = {"nodes": args.nodes,
                                  "slots": args.stacks * args.replicas}
    async with Store(endpoints, prefix="/bench/") as store:
        lease = await store.grant(3600)
        names = [f"node{i:04}" for i in range(args.nodes)]
        for i in range(0, len(names), 60):  # 2 puts per node, < 128 ops per txn
            ops = []
            for name in names[i:i + 60]:
                rec = NodeRecord(name, 8, 32 * GiB, 32768,
                                 MappingProxyType({"zone": f"z{hash(name) % 3}"}))
                ops += [Put(keys.node(name), rec.to_json()), Put(keys.alive(name), b"", lease)]
            await store.txn([], ops)
        for i in range(0, args.stacks, 100):
            await store.txn([], [Put(keys.stack(f"s{j:04}"), stack(f"s{j:04}",
                                                                   args.replicas).to_json())
                                 for j in range(i, min(i + 100, args.stacks))])
        term = await leader.campaign(store, "bench-leader", lease)

        await measure(store, term, "first placement", results)
        await measure(store, term, "nothing to do", results)
        victim = names[len(names) // 2]
        await store.delete(keys.alive(victim))
        await measure(store, term, "one node down", results)
        await store.put(keys.stack("s0000"), stack("s0000", args.replicas + 10).to_json())
        await measure(store, term, "one stack +10 replicas", results)
        await end_to_end(store, term, names[len(names) // 3], results)
        await store.revoke(lease)
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--stacks", type=int, default=100)
    ap.add_argument("--replicas", type=int, default=100)
    ap.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="stackd-bench-cluster-") as tmp:
        cluster = start_etcd(Path(tmp), 1)
        try:
            print(f"{args.nodes} nodes, {args.stacks} stacks x {args.replicas} replicas "
                  f"= {args.stacks * args.replicas} slots, etcd {cluster.endpoints[0]}")
            results = trio.run(run, cluster.endpoints, args)
        finally:
            cluster.stop()
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
