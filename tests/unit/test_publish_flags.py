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


def test_dash_capital_p_publishes_what_the_image_exposes_and_no_p_took() -> None:
    """`docker run -P`: refused for an image before ("only for a service run")."""
    from stackd.daemon.single import exposed_bindings

    given = parse_publish(["8080:80"])
    got = [str(b) for b in exposed_bindings(["80/tcp", "53/udp", "8000-8002", "80/udp"],
                                            "img", given)]
    assert got == ["(any)->53/udp", "(any)->8000/tcp", "(any)->8001/tcp", "(any)->8002/tcp",
                   "(any)->80/udp"]


@pytest.mark.parametrize("exposed", ["abc/tcp", "99999/udp", "0/tcp", "80/sctp", "90-80",
                                     "80/xyz"])
def test_what_an_image_exposes_that_is_no_port_is_said(exposed: str) -> None:
    from stackd.daemon.single import exposed_bindings

    with pytest.raises(UsageError, match=f"image img exposes '{exposed}', which -P cannot "
                                         "publish: not a tcp or udp port"):
        exposed_bindings([exposed], "img", [])


def test_docker_ports_lines_are_sorted_by_container_port() -> None:
    from stackd.cli.cmd_port import bindings

    row = {"ports": ["0.0.0.0:9000->8080/tcp", "127.0.0.1:53->53/udp", "0.0.0.0:1->443/tcp"]}
    assert bindings(row) == ["53/udp -> 127.0.0.1:53", "443/tcp -> 0.0.0.0:1",
                             "8080/tcp -> 0.0.0.0:9000"]
