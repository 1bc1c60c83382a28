"""Answers remembered in wire format (dnscache): the same bytes a fresh answer would be,
and never older than the records: every change, and every reload, is seen at once."""

from __future__ import annotations

import trio
from dnslib import DNSRecord
from support.freeaddrs import free_port

from stackd.netbridge import dnscache
from stackd.netbridge.dns import Records, Resolver
from stackd.netbridge.udpbatch import address_key

ME = "10.0.0.4"


def resolver() -> Resolver:
    res = Resolver(upstreams=[])
    res.add("n", "cli-1", ME, ["cli"])
    res.add("n", "web-1", "10.0.0.2", ["web"])
    res.add("n", "web-2", "10.0.0.3", ["web"])
    return res


def query(name: str, qid: int, qtype: str = "A", rd: bool = True) -> bytes:
    q = DNSRecord.question(name, qtype)
    q.header.id = qid
    q.header.rd = int(rd)
    return bytes(q.pack())


def ips(reply: bytes | None) -> list[str]:
    assert reply
    return [str(rr.rdata) for rr in DNSRecord.parse(reply).rr]


def test_a_remembered_answer_is_the_fresh_one_with_the_querys_id() -> None:
    cached, fresh = resolver(), resolver()
    q1, q2 = query("web", 1), query("web", 2)
    cached.answer(q1, ME)  # remembered now
    for q in (q2, query("web", 3, rd=False), query("cli", 4), query("web", 5, "AAAA")):
        # a fresh resolver answers from scratch: same rotation state, same bytes
        fresh.answer(q1, ME)
        assert cached.answer(q, ME) == fresh.answer(q, ME)
        fresh, cached = resolver(), resolver()
        cached.answer(q1, ME)
    reply = DNSRecord.parse(cached.answer(q2, ME) or b"")
    assert reply.header.id == 2 and reply.header.rd == 1
    assert DNSRecord.parse(cached.answer(query("web", 6, rd=False), ME) or b"").header.rd == 0


def test_replicas_still_take_turns() -> None:
    res = resolver()
    firsts = [ips(res.answer(query("web", i), ME))[0] for i in range(4)]
    assert firsts == ["10.0.0.2", "10.0.0.3", "10.0.0.2", "10.0.0.3"]


def test_every_change_is_answered_at_once() -> None:
    res = resolver()
    q = query("web", 7)
    assert sorted(ips(res.answer(q, ME))) == ["10.0.0.2", "10.0.0.3"]
    res.set_ready("web-1", False)
    assert ips(res.answer(q, ME)) == ["10.0.0.3"]
    res.add("n", "web-3", "10.0.0.5", ["web"])
    assert sorted(ips(res.answer(q, ME))) == ["10.0.0.3", "10.0.0.5"]
    res.remove("web-2")
    res.remove("web-3")
    assert res.answer(q, ME) is None  # no ready replica left: not ours, forwarded
    res.set_records("n", "web", ["192.0.2.1"])
    assert ips(res.answer(q, ME)) == ["192.0.2.1"]


def test_the_source_decides_and_is_part_of_the_key() -> None:
    res = resolver()
    q = query("web", 8)
    assert res.answer(q, ME)
    assert res.answer(q, "10.9.9.9") is None  # same bytes, a stranger: nothing of ours
    res.add("n", "late-1", "10.9.9.9", ["late"])
    assert res.answer(q, "10.9.9.9")


def test_other_records_at_the_same_generation_start_empty() -> None:
    cache = dnscache.AnswerCache()
    old, new = Records(), Records()
    cache.entries_for(old, 3)[(address_key("10.0.0.4"), b"q")] = dnscache.NOT_OURS
    assert cache.entries_for(old, 3)
    assert cache.entries_for(new, 3) == {}


async def test_a_reload_replaces_what_was_remembered() -> None:
    res = resolver()
    q = query("web", 9)
    assert sorted(ips(res.answer(q, ME))) == ["10.0.0.2", "10.0.0.3"]
    other = Records()
    other.add("n", "cli-1", ME, ["cli"])
    other.add("n", "web-9", "10.0.0.9", ["web"])
    other.add("n", "x-1", "10.0.0.10", ["x"])
    await res.load(other.table({}))  # no gateway: no listener to open
    assert ips(res.answer(q, ME)) == ["10.0.0.9"]


def test_a_flood_of_distinct_queries_stays_bounded() -> None:
    res = resolver()
    for i in range(dnscache.MAX_ENTRIES + 10):
        res.answer(query(f"n{i}", 1), ME)
    assert len(res._answers.entries_for(res.records, res.records.generation)) \
        <= dnscache.MAX_ENTRIES


async def test_answers_over_udp_follow_readiness(nursery: trio.Nursery) -> None:
    """The serving loop's own path (inlined cache hits) sees a change on the next query."""
    port = free_port()
    res = Resolver(upstreams=[], port=port)
    await nursery.start(res.serve)
    await res.listen("n", "127.0.0.1")
    res.add("n", "me", "127.0.0.1", ["me"])
    res.add("n", "db-1", "10.0.0.9", ["db"])
    res.add("n", "db-2", "10.0.0.10", ["db"])
    udp = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)

    async def ask(qid: int) -> list[str]:
        await udp.sendto(query("db", qid), ("127.0.0.1", port))
        return ips(await udp.recv(4096))

    with udp, trio.fail_after(2):
        firsts = [(await ask(i))[0] for i in range(4)]
        assert firsts == ["10.0.0.9", "10.0.0.10", "10.0.0.9", "10.0.0.10"]
        res.set_ready("db-1", False)
        assert await ask(5) == ["10.0.0.10"]


def test_aaaa_queries_do_not_turn_the_replicas() -> None:
    """libc asks A and AAAA together: if AAAA advanced the turn too, with two replicas
    every A answer would put the same one first."""
    res = resolver()
    firsts = []
    for i in range(4):
        firsts.append(ips(res.answer(query("web", 2 * i), ME))[0])
        assert ips(res.answer(query("web", 2 * i + 1, "AAAA"), ME)) == []
    assert firsts == ["10.0.0.2", "10.0.0.3", "10.0.0.2", "10.0.0.3"]
