"""The etcd client against real etcd: reads, conditional writes, leases, watches,
and a member killed under it."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from support.etcdcluster import EtcdCluster
from support.freeaddrs import free_port

from stackd.cluster.store import (
    Compare,
    Delete,
    Get,
    Put,
    Store,
    StoreError,
    StoreUnavailableError,
)


async def test_keys_live_under_the_prefix_and_only_there(etcd1: EtcdCluster) -> None:
    async with Store(etcd1.endpoints, prefix="/a/") as a, \
            Store(etcd1.endpoints, prefix="/b/") as b:
        await a.put("nodes/n1", b'{"x": 1}')
        await a.put("nodes/n2", b"two")
        await a.put("nodesX", b"not under nodes/")
        await b.put("nodes/n1", b"other prefix")
        kvs, rev = await a.range("nodes/")
        assert [(kv.key, kv.value) for kv in kvs] == [("nodes/n1", b'{"x": 1}'),
                                                      ("nodes/n2", b"two")]
        assert kvs[0].json() == {"x": 1}
        assert rev >= kvs[1].mod_revision
        assert (await b.get("nodes/n1")).value == b"other prefix"  # type: ignore[union-attr]
        assert await a.get("absent") is None
        assert await a.delete("nodes/", prefix=True) == 2
        assert (await a.range("nodes/"))[0] == []
        assert await a.get("nodesX") is not None


async def test_conditional_writes_refuse_a_stale_read(etcd1: EtcdCluster) -> None:
    async with Store(etcd1.endpoints, prefix="/t/") as s:
        assert await s.create("k", b"first")
        assert not await s.create("k", b"second")
        kv = await s.get("k")
        assert kv is not None and kv.value == b"first"
        # Two writers read the same revision: only the first one's write lands.
        assert await s.put_if("k", b"w1", kv.mod_revision)
        assert not await s.put_if("k", b"w2", kv.mod_revision)
        assert (await s.get("k")).value == b"w1"  # type: ignore[union-attr]
        now = await s.get("k")
        assert now is not None
        assert not await s.delete_if("k", kv.mod_revision)
        assert await s.delete_if("k", now.mod_revision)
        assert await s.get("k") is None


async def test_txn_runs_one_branch_atomically(etcd1: EtcdCluster) -> None:
    async with Store(etcd1.endpoints, prefix="/t/") as s:
        await s.put("guard", b"v1")
        ok = await s.txn([Compare("guard", "VALUE", "EQUAL", b"v1")],
                         [Put("a", b"1"), Put("b", b"2"), Get("", prefix=True)],
                         [Put("failed", b"yes")])
        assert ok.succeeded
        assert [kv.key for kv in ok.reads[0]] == ["a", "b", "guard"]
        no = await s.txn([Compare("guard", "VALUE", "EQUAL", b"v0")],
                         [Delete("a")], [Get("a")])
        assert not no.succeeded and [kv.value for kv in no.reads[0]] == [b"1"]
        assert await s.get("a") is not None and await s.get("failed") is None


async def test_a_lease_keeps_its_keys_until_it_expires_or_is_revoked(
        etcd1: EtcdCluster) -> None:
    async with Store(etcd1.endpoints, prefix="/t/") as s:
        short = await s.grant(1)
        kept = await s.grant(1)
        await s.put("short", b"", lease=short)
        await s.put("kept", b"", lease=kept)
        assert (await s.get("short")).lease == short  # type: ignore[union-attr]
        # etcd expires a lease between TTL and about TTL + 1 s; keep one alive over that.
        with trio.fail_after(10):
            while await s.get("short") is not None:
                assert await s.keepalive(kept) > 0
                await trio.sleep(0.2)
        assert await s.get("kept") is not None
        assert await s.keepalive(short) == 0
        await s.revoke(kept)
        assert await s.get("kept") is None
        await s.revoke(kept)  # revoking twice is fine


async def test_watch_sees_every_change_after_the_read(etcd1: EtcdCluster) -> None:
    async with Store(etcd1.endpoints, prefix="/t/") as s:
        await s.put("w/before", b"0")
        _, rev = await s.range("w/")
        await s.put("w/a", b"1")  # after the read, before the watch starts: still seen
        seen: list[tuple[str, str, bytes]] = []
        with trio.fail_after(10):
            async with contextlib.aclosing(s.watch("w/", rev + 1)) as events:
                await s.put("other", b"not watched")
                await s.delete("w/a")
                await s.put("w/b", b"2")
                async for ev in events:
                    seen.append((ev.type, ev.kv.key, ev.kv.value))
                    if len(seen) == 3:
                        break
        assert seen == [("PUT", "w/a", b"1"), ("DELETE", "w/a", b""), ("PUT", "w/b", b"2")]


async def test_a_client_outlives_a_killed_member(etcd3: EtcdCluster) -> None:
    async with Store(etcd3.endpoints, prefix="/t/", timeout=2.0) as s:
        assert await s.create("k", b"1")
        etcd3.members[0].kill()
        with trio.fail_after(10):
            while True:  # a new raft leader may take a moment if m0 was the leader
                try:
                    kv = await s.get("k")
                    break
                except StoreUnavailableError:
                    await trio.sleep(0.1)
        assert kv is not None
        assert await s.put_if("k", b"2", kv.mod_revision)
        etcd3.members[1].kill()
        # One of three left: no quorum, and the client says so in a typed error.
        with pytest.raises(StoreUnavailableError) as err:
            with trio.fail_after(10):
                await s.put("k", b"3")
        assert "etcd" in str(err.value)


async def test_no_endpoint_answering_is_a_typed_error(etcd1: EtcdCluster) -> None:
    etcd1.stop()
    async with Store(etcd1.endpoints, prefix="/t/") as s:
        with pytest.raises(StoreUnavailableError, match="no etcd endpoint answered"):
            await s.get("k")


async def test_an_endpoint_that_is_not_etcd_is_a_typed_error(tmp_path: Path) -> None:
    """Any HTTP server on the URL (here a directory listing) is not taken for etcd."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port),
                               "--bind", "127.0.0.1", "--directory", str(tmp_path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async with Store([f"http://127.0.0.1:{port}"]) as s:
            with trio.fail_after(10):
                while True:
                    try:
                        await s.get("k")
                    except StoreUnavailableError:  # not listening yet
                        await trio.sleep(0.05)
                        continue
                    except StoreError as e:
                        assert "something other than etcd's JSON" in str(e)
                        assert "point --etcd at an etcd" in str(e)
                        break
                    raise AssertionError("a directory listing was taken for etcd")
    finally:
        server.kill()
        server.wait()


async def test_no_quorum_is_said_in_words(etcd3: EtcdCluster) -> None:
    """A member that cannot reach a quorum holds a read until the client gives up: the
    error names the endpoint, the call and that nothing came back in time (a timeout's
    own text is empty: the message once ended in a bare colon)."""
    etcd3.members[1].kill()
    etcd3.members[2].kill()
    async with Store(etcd3.endpoints[:1], prefix="/t/", timeout=1.0) as s:
        with pytest.raises(StoreUnavailableError) as err:
            with trio.fail_after(10):
                await s.get("k")
    assert str(err.value).startswith(
        f"etcd at {etcd3.endpoints[0]} did not answer kv/range: no answer in 1 s"), err.value
    assert "quorum" in (err.value.hint or "")


async def test_a_read_outlives_raft_electing_a_new_leader(etcd3: EtcdCluster) -> None:
    """Killing raft's leader: a read sent while the others elect one used to fail with
    `etcdserver: leader changed` (so did `stackd node ls`, `up` and `scale`); a read is
    safe to send again, and is, within the client's timeout."""
    async with Store(etcd3.endpoints, prefix="/t/", timeout=5.0) as s:
        await s.put("k", b"1")
        etcd3.leader().kill()
        end = trio.current_time() + 2.0
        while trio.current_time() < end:
            kv = await s.get("k")
            assert kv is not None and kv.value == b"1"
            await trio.sleep(0.02)
