"""mac_address, interface_name and port ranges with replicas, as the desired state has them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stackd.errors import SpecError
from stackd.images.models import Image, ImageConfig
from stackd.reconciler.desired import DesiredState
from stackd.reconciler.translate import TranslateInputs, desired_state
from stackd.spec import load_text

IMAGE = Image(id="sha256:" + "1" * 64, digest="sha256:" + "a" * 64,
              references=("busybox:latest",), config=ImageConfig(cmd=("sh",)),
              layer_dirs=("/layers/base",))


def build(text: str, tmp_path: Path) -> DesiredState:
    stack = load_text(text, project_name="demo", environ={}, project_directory=tmp_path)
    inputs = TranslateInputs(volume_path=lambda n: f"/v/{n}", file_path=lambda d: f"/f/{d}",
                         read_file=lambda p: b"")
    return desired_state(stack, {name: IMAGE for name in stack.services}, inputs)


def test_mac_address_and_interface_name_reach_the_attachments(tmp_path: Path) -> None:
    d = build("""
services:
  web:
    image: busybox
    mac_address: 02:42:ac:11:00:09
    networks:
      front: {priority: 10}
      back: {interface_name: back0, mac_address: 02:42:ac:11:00:0a}
networks: {front: {}, back: {}}
""", tmp_path)
    got = [(a.network_key, a.mac_address, a.interface_name)
           for a in d.containers[0].attachments]
    assert got == [("demo_front", "02:42:ac:11:00:09", None),
                   ("demo_back", "02:42:ac:11:00:0a", "back0")]


def test_an_interface_name_given_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="two of its networks would both be the interface "
                       "'eth0'"):
        build("""
services:
  web:
    image: busybox
    networks:
      a: {}
      b: {interface_name: eth0}
networks: {a: {}, b: {}}
""", tmp_path)


def test_interface_name_is_part_of_the_hash(tmp_path: Path) -> None:
    text = "services:\n  web:\n    image: busybox\n"
    plain = build(text, tmp_path).containers[0].config_hash
    named = build(text + "    networks:\n      default: {interface_name: net0}\n",
                  tmp_path).containers[0].config_hash
    assert plain.digest != named.digest


def test_three_replicas_each_publish_one_port_of_the_range(tmp_path: Path) -> None:
    d = build("""
services:
  web:
    image: busybox
    deploy: {replicas: 3}
    ports: ["18090-18092:80"]
""", tmp_path)
    assert [[str(p) for p in c.ports] for c in d.containers] == [
        ["18090->80/tcp"], ["18091->80/tcp"], ["18092->80/tcp"]]
    assert len({c.config_hash.digest for c in d.containers}) == 1


def test_annotations_in_either_form_reach_the_container_and_its_hash(tmp_path: Path) -> None:
    text = "services:\n  web:\n    image: busybox\n"
    plain = build(text, tmp_path).containers[0]
    listed = build(text + "    annotations: [com.example.team=storage, tier=db]\n",
                   tmp_path).containers[0]
    mapped = build(text + "    annotations: {com.example.team: storage, tier: db}\n",
                   tmp_path).containers[0]
    assert listed.spec.annotations == {"com.example.team": "storage", "tier": "db"}
    assert listed.config_hash.digest == mapped.config_hash.digest != plain.config_hash.digest
    assert plain.spec.annotations == {} and plain.spec.labels.get("tier") is None


def test_blkio_config_reaches_the_container_and_its_hash(tmp_path: Path) -> None:
    from stackd.runtime.containerspec import BlkioLimit

    text = "services:\n  web:\n    image: busybox\n"
    plain = build(text, tmp_path).containers[0]
    keyed = build(text + """    blkio_config:
      weight: 300
      weight_device: [{path: /dev/sda, weight: 400}]
      device_read_bps: [{path: /dev/sdb, rate: 1mb}]
      device_write_iops: [{path: /dev/sdb, rate: 30}]
""", tmp_path).containers[0]
    res = keyed.spec.resources
    assert res.blkio_weight == 300
    assert res.blkio_devices == (
        BlkioLimit(path="/dev/sda", limit="weight", value=400),
        BlkioLimit(path="/dev/sdb", limit="read_bps", value=1024 * 1024),
        BlkioLimit(path="/dev/sdb", limit="write_iops", value=30))
    assert plain.config_hash.digest != keyed.config_hash.digest
    assert (plain.spec.resources.blkio_weight, plain.spec.resources.blkio_devices) == (None, ())


def test_cgroup_keys_reach_the_container_and_its_hash(tmp_path: Path) -> None:
    text = "services:\n  web:\n    image: busybox\n"
    plain = build(text, tmp_path).containers[0]
    keyed = build(text + "    mem_swappiness: 10\n    oom_kill_disable: true\n"
                  "    device_cgroup_rules: ['c 188:* rmw']\n", tmp_path).containers[0]
    res = keyed.spec.resources
    assert (res.memory_swappiness, res.oom_kill_disable) == (10, True)
    assert keyed.spec.device_cgroup_rules == ("c 188:* rmw",)
    assert plain.config_hash.digest != keyed.config_hash.digest
    # Unset, they are not in the hash: a stack that never used them is not recreated.
    assert (plain.spec.resources.memory_swappiness, plain.spec.device_cgroup_rules) == (
        None, ())


def test_a_device_the_host_lacks_is_refused_naming_the_service_once(tmp_path: Path) -> None:
    """Checked for what the plan creates or recreates, once per service; a running
    container whose device is gone (unplugged) stops nothing else from being healed."""
    import dataclasses

    from stackd.errors import HostError
    from stackd.reconciler.actual import ActualContainer, ActualState
    from stackd.reconciler.diff import PlanOptions, plan
    from stackd.reconciler.hostdevices import check_host_devices, to_check
    from stackd.runtime.containerspec import ContainerSpec

    text = ("services:\n  plain:\n    image: busybox\n  disk:\n    image: busybox\n"
            "    deploy: {replicas: 3}\n"
            "    blkio_config: {device_read_bps: [{path: /dev/nope, rate: 1mb}]}\n")
    desired = build(text, tmp_path)
    asked: list[str] = []

    def check(spec: ContainerSpec) -> None:
        asked.append(spec.name)
        if spec.resources.blkio_devices:
            raise HostError("blkio_config.device_read_bps: /dev/nope: No such file",
                            hint="name a block device")

    fresh = plan(desired, ActualState("demo", (), frozenset(), frozenset()), PlanOptions())
    with pytest.raises(HostError, match=re.escape(
            "service 'disk': blkio_config.device_read_bps: /dev/nope: No such file")) as caught:
        check_host_devices(to_check(fresh.actions), check)
    assert caught.value.hint == "name a block device"
    assert asked == ["demo-disk-1"]  # once per service; `plain` names no device
    running = ActualState("demo", tuple(
        ActualContainer(c.id, c.name, c.service, c.index, "running", c.config_hash.digest)
        for c in desired.containers), frozenset(desired.networks), frozenset(desired.volumes))
    settled = plan(desired, running, PlanOptions())
    asked.clear()
    check_host_devices(to_check(settled.actions), check)  # nothing to create: nothing checked
    assert asked == []
    gone = dataclasses.replace(running, containers=running.containers[1:])
    with pytest.raises(HostError):
        check_host_devices(to_check(plan(desired, gone, PlanOptions()).actions), check)
