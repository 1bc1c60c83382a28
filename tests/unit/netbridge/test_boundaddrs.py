from __future__ import annotations

import socket
from ipaddress import IPv4Address

from stackd.netbridge.boundaddrs import bound_addresses, parse_proc_net

TABLE = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
  0: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2
  1: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2
  2: 0120C00A:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2
"""


def test_only_specific_non_loopback_addresses_count() -> None:
    # 0x0A C0 20 01 printed little-endian: 10.192.32.1; 127.0.0.1 and 0.0.0.0 aside
    assert parse_proc_net(TABLE) == {IPv4Address("10.192.32.1")}


def test_a_socket_bound_here_is_seen() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_IP, 15, 1)  # IP_FREEBIND: the address need not exist
        s.bind(("10.251.77.9", 0))
        assert IPv4Address("10.251.77.9") in bound_addresses()
