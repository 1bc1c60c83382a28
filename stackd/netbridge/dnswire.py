"""DNS wire format for the resolver's hot path: one plain question in, A records out.

The common query — what libc and busybox send: one question, class IN, no
compression — is decoded and answered here by hand; dnslib takes ~200 µs a query
where this takes a few, and the resolver's goal is 10k q/s on one core. Anything
unusual is left to dnslib (`parse_simple_query` returns None).
"""

from __future__ import annotations

import socket
import struct

QTYPE_A = 1

_HEADER = struct.Struct("!HHHHHH")
_A_RR = struct.Struct("!HHHIH")  # name pointer, type, class, ttl, rdlength
_QUESTION_PTR = 0xC00C  # the name of the one question, right after the header
CLASS_IN = 1


def parse_simple_query(data: bytes) -> tuple[str, int, int] | None:
    """(name, qtype, end of question) of a plain one-question IN query, else None."""
    if len(data) < 17:
        return None
    _, flags, qd, an, ns, _ = _HEADER.unpack_from(data)
    if flags & 0xF800 or qd != 1 or an or ns:  # a response, or not a standard QUERY
        return None
    labels = []
    pos = 12
    while True:
        if pos >= len(data):
            return None
        n = data[pos]
        if n == 0:
            pos += 1
            break
        if n & 0xC0:  # compression has no place in a question; let dnslib judge it
            return None
        labels.append(data[pos + 1:pos + 1 + n])
        pos += 1 + n
    if pos + 4 > len(data):
        return None
    qtype, qclass = struct.unpack_from("!HH", data, pos)
    if qclass != CLASS_IN:
        return None
    try:
        name = b".".join(labels).decode("ascii").lower()
    except UnicodeDecodeError:
        return None
    return name, qtype, pos + 4


def build_reply(query: bytes, question_end: int, ips: list[str]) -> bytes:
    """Authoritative answer, recursion available, RD copied; A records with TTL 0."""
    qid, flags = struct.unpack_from("!HH", query)
    out = [_HEADER.pack(qid, 0x8480 | (flags & 0x0100), 1, len(ips), 0, 0),
           query[12:question_end]]
    for ip in ips:
        out.append(_A_RR.pack(_QUESTION_PTR, QTYPE_A, CLASS_IN, 0, 4))
        out.append(socket.inet_aton(ip))
    return b"".join(out)
