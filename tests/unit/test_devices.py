"""Devices: resolved once from the host node; the cgroup v1 rules that follow from them."""

from __future__ import annotations

import pytest

from stackd.errors import HostError
from stackd.runtime.cgroups.settings import v1_device_writes
from stackd.runtime.containerspec import ContainerSpec, Device, ProcessSpec
from stackd.runtime.devices import resolve_devices


def spec(*devices: Device) -> ContainerSpec:
    return ContainerSpec(id="c", name="c", layers=("/l",), process=ProcessSpec(args=("x",)),
                         devices=devices)


def test_a_host_node_is_resolved_to_its_numbers() -> None:
    got = resolve_devices(spec(Device(source="/dev/null", target="/dev/mynull",
                                      permissions="rw"))).devices
    assert [(d.target, d.type, d.major, d.minor, d.mode) for d in got] == [
        ("/dev/mynull", "c", 1, 3, 0o666)]
    assert got[0].cgroup_rule == "c 1:3 rw"


def test_what_is_not_a_device_is_refused() -> None:
    with pytest.raises(HostError, match="device /etc/hostname is not a device node"):
        resolve_devices(spec(Device(source="/etc/hostname", target="/dev/x")))
    with pytest.raises(HostError, match="device /dev/nonexistent-stackd: No such file"):
        resolve_devices(spec(Device(source="/dev/nonexistent-stackd", target="/dev/x")))


def test_cgroup_rules_deny_all_then_allow_defaults_and_the_devices() -> None:
    fuse = Device(source="/dev/fuse", target="/dev/fuse", type="c", major=10, minor=229,
                  permissions="rw")
    writes = v1_device_writes(False, (fuse,))
    assert writes[0] == ("devices", "devices.deny", "a *:* rwm")
    assert writes[-1] == ("devices", "devices.allow", "c 10:229 rw")
    assert ("devices", "devices.allow", "c 10:229 rw") not in v1_device_writes(False)
    assert v1_device_writes(True, (fuse,)) == [("devices", "devices.allow", "a *:* rwm")]
