"""Host port ranges with replicas: one port of the range per replica, as Compose does."""

from __future__ import annotations

import pytest

from stackd.errors import SpecError
from stackd.reconciler.published import published_ports
from stackd.spec import load_text

STACK = load_text("""\
services:
  web:
    image: x
    deploy: {replicas: 3}
    ports:
      - "18090-18092:80"
      - "127.0.0.1:9000:9000/udp"
      - "8443"
""", environ={})


def test_each_replica_takes_the_next_port_of_the_range() -> None:
    got = [[str(p) for p in published_ports(STACK, "web", i)] for i in (1, 2, 3)]
    assert got == [["18090->80/tcp", "127.0.0.1:9000->9000/udp"],
                   ["18091->80/tcp", "127.0.0.1:9000->9000/udp"],
                   ["18092->80/tcp", "127.0.0.1:9000->9000/udp"]]


def test_a_replica_beyond_the_range_is_refused_with_its_place() -> None:
    with pytest.raises(SpecError) as err:
        published_ports(STACK, "web", 4)
    assert str(err.value) == (
        "service 'web': replica 4 has no host port left in 18090-18092 (each replica takes "
        "one port of the range) (compose.yaml:6:9)\n"
        "  hint: widen the range, or run fewer replicas")


def test_a_range_of_both_sides_stays_one_binding_per_port() -> None:
    stack = load_text("services:\n  web:\n    image: x\n    ports: ['8000-8001:80-81']\n",
                      environ={})
    assert [str(p) for p in published_ports(stack, "web", 1)] == ["8000->80/tcp",
                                                                   "8001->81/tcp"]
