"""What the socket load balancer's map holds for a set of DNAT rules, and the
assembler its programs are written with. The programs' behaviour on a real kernel:
tests/integration/netbridge/test_socketlb.py."""

from __future__ import annotations

import struct

from stackd.netbridge.firewall import DnatRule
from stackd.netbridge.socketlb import MAX_BACKENDS, endpoint, entries
from stackd.runtime import ebpf


def backends_of(value: bytes) -> list[bytes]:
    n, turn = struct.unpack_from("<II", value)
    assert turn == 0 and len(value) == 8 + 8 * MAX_BACKENDS
    return [value[8 + 8 * i:16 + 8 * i] for i in range(n)]


def test_an_endpoint_is_laid_out_as_the_kernel_gives_it_to_the_program() -> None:
    # user_ip4 and user_port of struct bpf_sock_addr: network order, port in the low half
    assert endpoint("127.0.0.1", 8080) == bytes([127, 0, 0, 1, 0x1F, 0x90, 0, 0])


def test_every_address_is_the_wildcard_key_and_a_bound_one_its_own() -> None:
    got = entries([DnatRule("", 8080, "tcp", "10.1.0.2", 80, "a"),
                   DnatRule("0.0.0.0", 8081, "tcp", "10.1.0.2", 81, "a"),
                   DnatRule("127.0.0.1", 8082, "tcp", "10.1.0.2", 82, "a")])
    assert {k: backends_of(v) for k, v in got.items()} == {
        endpoint("0.0.0.0", 8080): [endpoint("10.1.0.2", 80)],
        endpoint("0.0.0.0", 8081): [endpoint("10.1.0.2", 81)],
        endpoint("127.0.0.1", 8082): [endpoint("10.1.0.2", 82)],
    }


def test_a_group_balances_over_its_ready_backends_as_the_dnat_rule_does() -> None:
    group = [DnatRule("", 80, "tcp", "10.1.0.3", 80, "b", "p/web", ready=True),
             DnatRule("", 80, "tcp", "10.1.0.2", 80, "a", "p/web", ready=True),
             DnatRule("", 80, "tcp", "10.1.0.4", 80, "c", "p/web", ready=False)]
    [value] = entries(group).values()
    assert backends_of(value) == [endpoint("10.1.0.2", 80), endpoint("10.1.0.3", 80)]
    unready = [DnatRule("", 80, "tcp", "10.1.0.2", 80, "a", "p/web", ready=False)]
    [value] = entries(unready).values()
    assert backends_of(value) == [endpoint("10.1.0.2", 80)]


def test_what_only_dnat_can_serve_is_left_to_it() -> None:
    many = [DnatRule("", 90, "tcp", f"10.1.0.{i}", 80, str(i), "p/big")
            for i in range(2, 3 + MAX_BACKENDS)]
    assert entries([
        DnatRule("", 53, "udp", "10.1.0.2", 53, "dns"),  # connect() hooks see TCP only here
        DnatRule("", 80, "tcp", "10.1.0.2", 80, "a", "p/web"),  # with a replica elsewhere:
        DnatRule("", 80, "tcp", "10.9.0.2", 80, "b", "p/web", remote=True),  # masquerade
        DnatRule("::", 81, "tcp", "10.1.0.2", 81, "v6"),  # "::" is every address: kept
        *many,
    ]).keys() == {endpoint("0.0.0.0", 81)}
    assert len(entries(many[:MAX_BACKENDS])) == 1


def test_jumps_count_instructions_after_them_and_a_wide_load_takes_two() -> None:
    p = ebpf.Program()
    p.jump_if(ebpf.R1, "==", 7, "end")
    p.load_imm64(ebpf.R2, 0x1_0000_0002)
    p.label("end")
    p.mov_imm(ebpf.R0, -1)
    p.exit()
    insns = [struct.unpack("<BBhi", chunk) for chunk in
             (p.assemble()[i:i + 8] for i in range(0, 40, 8))]
    assert insns == [
        (0x15, 0x01, 2, 7),  # jeq r1, 7, +2: over both halves of the wide load
        (0x18, 0x02, 0, 2), (0x00, 0x00, 0, 1),
        (0xB7, 0x00, 0, -1),
        (0x95, 0x00, 0, 0),
    ]
