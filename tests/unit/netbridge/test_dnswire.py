"""The hand-rolled hot path agrees with dnslib, and steps aside for anything unusual."""

from __future__ import annotations

import pytest
from dnslib import QTYPE, DNSRecord
from hypothesis import given
from hypothesis import strategies as st

from stackd.netbridge.dnswire import build_reply, parse_simple_query

LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_",
                min_size=1, max_size=20)


@given(st.lists(LABEL, min_size=1, max_size=4), st.sampled_from(["A", "AAAA", "MX", "ANY"]))
def test_parses_what_dnslib_writes(labels: list[str], qtype: str) -> None:
    name = ".".join(labels)
    q = DNSRecord.question(name, qtype)
    assert parse_simple_query(q.pack()) == (name.lower(), getattr(QTYPE, qtype),
                                            len(q.pack()))


@given(st.lists(st.ip_addresses(v=4).map(str), max_size=5), st.booleans())
def test_replies_read_back_with_dnslib(ips: list[str], rd: bool) -> None:
    q = DNSRecord.question("svc.local")
    q.header.rd = int(rd)
    wire = q.pack()
    parsed = parse_simple_query(wire)
    assert parsed is not None
    reply = DNSRecord.parse(build_reply(wire, parsed[2], ips))
    assert reply.header.id == q.header.id
    assert (reply.header.qr, reply.header.aa, reply.header.rd, reply.header.ra) == \
        (1, 1, int(rd), 1)
    assert [str(rr.rdata) for rr in reply.rr] == ips
    assert {rr.ttl for rr in reply.rr} <= {0}
    assert str(reply.q.qname) == "svc.local."


@pytest.mark.parametrize("wire", [
    b"",
    b"\x00" * 11,
    DNSRecord.question("x").reply().pack(),  # a response, not a query
    DNSRecord.question("x").pack()[:-3],  # truncated
    DNSRecord.question("x", qclass="CH").pack(),  # not class IN
])
def test_unusual_input_goes_the_dnslib_way(wire: bytes) -> None:
    assert parse_simple_query(wire) is None
