"""Names a stack gives to host objects: refused where written unless plain names;
container_name names one container (issue #13, item 7)."""

from __future__ import annotations

import pytest

from stackd.errors import SpecError
from stackd.spec import load_text


def error_of(text: str) -> str:
    with pytest.raises(SpecError) as info:
        load_text(text, environ={})
    return str(info.value)


@pytest.mark.parametrize("name", ["../../x", "a/b", ".hidden", "-x", "x y", "é", "x" * 111])
def test_a_network_name_that_is_no_plain_name_is_refused(name: str) -> None:
    quoted = f"'{name}'"
    as_key = error_of(f"services:\n  web:\n    image: x\n    networks: [{quoted}]\n"
                      f"networks:\n  {quoted}: {{}}\n")
    assert "is not valid" in as_key and "(compose.yaml:" in as_key
    as_name = error_of(f"services:\n  web:\n    image: x\n    networks: [n]\n"
                       f"networks:\n  n:\n    name: {quoted}\n")
    assert as_name.startswith(f"network 'n': name {name!r} is not valid (compose.yaml:7:5)")


def test_a_volume_name_that_is_no_plain_name_is_refused() -> None:
    text = error_of("services:\n  web:\n    image: x\n    volumes: [d:/d]\n"
                    "volumes:\n  d:\n    name: ../../etc\n")
    assert text.startswith("volume 'd': name '../../etc' is not valid (compose.yaml:7:5)")


def test_an_external_network_or_volume_without_a_name_is_found_by_its_key() -> None:
    """compose-go's rule (and every traefik setup's `networks: {proxy: {external:
    true}}`): an external one is the host's `proxy`, not `<project>_proxy`."""
    stack = load_text("services:\n  web:\n    image: x\n    networks: [proxy, own]\n"
                      "    volumes: [certs:/c, data:/d]\n"
                      "networks:\n  proxy: {external: true}\n  own: {}\n"
                      "volumes:\n  certs: {external: true}\n  data: {}\n"
                      "  named: {external: true, name: other}\n",
                      project_name="shop", environ={})
    assert [stack.network_host_name(k) for k in ("proxy", "own")] == ["proxy", "shop_own"]
    assert [stack.volume_host_name(k) for k in ("certs", "data", "named")] == [
        "certs", "shop_data", "other"]


def test_plain_names_load() -> None:
    stack = load_text("services:\n  web:\n    image: x\n    container_name: My.web_1-a\n"
                      "    networks: [front.net]\n    volumes: [data_1:/d]\n"
                      "networks:\n  front.net: {name: Front-1}\nvolumes:\n  data_1: {}\n",
                      environ={})
    assert stack.services["web"].container_name == "My.web_1-a"
    assert stack.networks["front.net"].name == "Front-1"


@pytest.mark.parametrize("name", ["../x", "a/b", "-x", ".x", "x:y", "x" * 111])
def test_a_container_name_that_is_no_plain_name_is_refused(name: str) -> None:
    text = error_of(f"services:\n  web:\n    image: x\n    container_name: '{name}'\n")
    assert text.startswith(f"service 'web': container_name {name!r} is not valid "
                           "(compose.yaml:4:5)")


def test_two_services_with_one_container_name_are_refused() -> None:
    text = error_of("services:\n  a:\n    image: x\n    container_name: db\n"
                    "  b:\n    image: x\n    container_name: DB\n")
    assert text == ("service 'b': container_name 'DB' is already the name of service "
                    "'a''s container (compose.yaml:7:5)\n"
                    "  hint: give each service its own container_name")


@pytest.mark.parametrize("replicas", ["scale: 2", "deploy: {replicas: 3}"])
def test_a_container_name_with_replicas_is_refused(replicas: str) -> None:
    text = error_of(f"services:\n  web:\n    image: x\n    container_name: web\n"
                    f"    {replicas}\n")
    assert text.startswith("service 'web': container_name 'web' names one container, "
                           "but the service wants")
    assert "(compose.yaml:4:5)" in text
