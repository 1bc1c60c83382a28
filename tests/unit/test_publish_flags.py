"""`stackd run -p`: docker run's forms, a free host port among them."""

from __future__ import annotations

import pytest

from stackd.daemon.single import parse_publish
from stackd.errors import SpecError, UsageError


def test_each_form_of_dash_p() -> None:
    """`-p 80` and `-p IP::80` were refused as not HOST:CONTAINER: docker run publishes
    them on a free host port."""
    got = [str(b) for b in parse_publish(
        ["8080:80", "127.0.0.1:9000:9000/udp", "80", "127.0.0.1::81", "82/udp"])]
    assert got == ["8080->80/tcp", "127.0.0.1:9000->9000/udp", "(any)->80/tcp",
                   "127.0.0.1:(any)->81/tcp", "(any)->82/udp"]
    assert [b.ephemeral for b in parse_publish(["80", "8080:80"])] == [True, False]


@pytest.mark.parametrize(("item", "said"), [
    ("x", "-p 'x' is not [[IP:]HOST:]CONTAINER[/PROTO]"), ("80:y", "is not [[IP:]HOST:]"),
    ("", "-p '' is not"), ("1:2:3:4", "host_ip '1:2' is not an IPv4 address"),
    ("70000", "port 70000 is out of range 1-65535"), ("80/sctp", "protocol 'sctp'")])
def test_what_is_no_port_is_said(item: str, said: str) -> None:
    with pytest.raises((UsageError, SpecError)) as err:
        parse_publish([item])
    assert said in str(err.value)
