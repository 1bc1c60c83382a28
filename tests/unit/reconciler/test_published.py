"""Host port ranges with replicas: one port of the range per replica, as Compose does."""

from __future__ import annotations

import pytest

from stackd.errors import SpecError
from stackd.images.models import Image, ImageConfig
from stackd.reconciler.desired import DesiredState
from stackd.reconciler.published import published_ports
from stackd.reconciler.translate import TranslateInputs, desired_state
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
    """…and each its own free host port for `- "8443"` (chosen as it is published),
    which was dropped without a word: nothing was published for it."""
    got = [[str(p) for p in published_ports(STACK, "web", i)] for i in (1, 2, 3)]
    assert got == [["18090->80/tcp", "127.0.0.1:9000->9000/udp", "(any)->8443/tcp"],
                   ["18091->80/tcp", "127.0.0.1:9000->9000/udp", "(any)->8443/tcp"],
                   ["18092->80/tcp", "127.0.0.1:9000->9000/udp", "(any)->8443/tcp"]]
    chosen = published_ports(STACK, "web", 1)[2]
    assert chosen.ephemeral and not chosen.meshed


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



IMAGE = Image(id="sha256:" + "1" * 64, digest="sha256:" + "a" * 64, references=(),
              config=ImageConfig(cmd=("sh",)), layer_dirs=("/l",))


def desired(text: str) -> DesiredState:
    stack = load_text(text, project_name="demo", environ={})
    inputs = TranslateInputs(volume_path=lambda n: f"/v/{n}", file_path=lambda d: f"/f/{d}",
                             read_file=lambda p: b"")
    return desired_state(stack, {n: IMAGE for n in stack.services}, inputs)


def test_two_services_on_one_host_port_are_refused_before_anything_starts() -> None:
    with pytest.raises(SpecError) as err:
        desired("services:\n"
                "  a: {image: x, ports: ['18081:80']}\n"
                "  b: {image: x, ports: ['127.0.0.1:18081:81']}\n")
    assert str(err.value) == (
        "services 'a' and 'b' both publish host port 18081/tcp (compose.yaml:3:17)\n"
        "  hint: give one of them another host port (replicas of one service share theirs)")


def test_one_service_publishing_a_host_port_twice_is_refused() -> None:
    with pytest.raises(SpecError) as err:
        desired("services:\n  a: {image: x, ports: ['18081:80', '18081:81']}\n")
    assert str(err.value).startswith("service 'a' publishes host port 18081/tcp twice")


@pytest.mark.parametrize("ports", [
    ("['18081:80']", "['18081:80/udp']"),  # another protocol
    ("['127.0.0.1:18081:80']", "['127.0.0.2:18081:80']"),  # other addresses
    ("['18081-18082:80']", "['18083:80']"),  # past the range
])
def test_host_ports_that_do_not_meet_are_fine(ports: tuple[str, str]) -> None:
    d = desired(f"services:\n  a: {{image: x, deploy: {{replicas: 2}}, ports: {ports[0]}}}\n"
                f"  b: {{image: x, ports: {ports[1]}}}\n")
    assert len(d.containers) == 3


def test_replicas_of_one_service_share_its_host_port() -> None:
    d = desired("services:\n  a: {image: x, deploy: {replicas: 3}, ports: ['18081:80']}\n")
    assert {str(b) for c in d.containers for b in c.ports} == {"18081->80/tcp"}
