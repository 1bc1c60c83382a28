"""The runtime monitor is host memory held for as long as any container runs (issue #20):
it reads container specs without pydantic, through views checked against the model's
own schema, and what it accepts and refuses is what the model accepts and refuses."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pydantic
import pytest

from stackd.errors import SpecError
from stackd.runtime import protocol
from stackd.runtime.cgroups.settings import v1_device_writes
from stackd.runtime.containerspec import (
    ContainerSpec,
    Device,
    LogConfig,
    Mount,
    Namespaces,
    ProcessSpec,
    Resources,
    Rlimit,
    Security,
    plain_schema,
)
from stackd.runtime.devices import resolve_devices
from stackd.runtime.specview import SCHEMA_FILE, SpecView, device_rule, dump_spec, load_spec

HEAVY = ("pydantic", "pydantic_core", "annotated_types", "trio", "yaml", "httpx", "argparse",
         "subprocess", "ctypes.util", "zipfile", "typing")

FULL = ContainerSpec(
    id="web-1", name="web", labels={"a": "b"}, layers=("/l/2", "/l/1"), readonly_rootfs=True,
    process=ProcessSpec(args=("sh", "-c", "echo hi"), env=("A=1",), cwd="/srv", user="1:2",
                        additional_groups=("wheel",), terminal=True, console_rows=24,
                        console_cols=80, rlimits=(Rlimit(type="nofile", soft=1, hard=2),),
                        init=True),
    hostname="h", mounts=(Mount(type="tmpfs", target="/t", size=1024, mode=0o700),
                          Mount(type="bind", target="/b", source="/srv", readonly=True),
                          Mount(type="tmpfs", target="/u", uid=5, gid=6, noexec=True),
                          Mount(type="volume", target="/v", source="/vol", subpath="a/b")),
    devices=(Device(source="/dev/null", target="/dev/n", permissions="rw"),),
    extra_hosts=("x:1.2.3.4",), dns=("10.0.0.1",), files={"/etc/hosts": "127.0.0.1 h\n"},
    namespaces=Namespaces(net="/proc/1/ns/net", cgroup="host"),
    resources=Resources(memory=1 << 20, cpu_quota=50_000, cpuset_cpus="0"),
    security=Security(cap_add=("NET_ADMIN",), no_new_privileges=False,
                      sysctls={"net.ipv4.ip_forward": "1"}),
    stop_signal="SIGINT", stop_grace=2.5, log=LogConfig(max_size=100, max_files=1))


def test_the_monitor_imports_no_pydantic() -> None:
    # Everything the monitor loads (its module, the seccomp compiler it loads at start),
    # then a create request's spec read the monitor's way and its seccomp plan made.
    spec = json.dumps(FULL.model_dump(mode="json"))
    code = ("import json, sys\n"
            "import stackd.runtime.monitor, stackd.runtime.security\n"
            "from stackd.runtime import protocol\n"
            f"s = protocol.request_spec({{'spec': json.loads({spec!r})}})\n"
            "stackd.runtime.security.prepare(s)\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_the_schema_file_is_the_models() -> None:
    want = json.dumps(plain_schema(), indent=1, sort_keys=True) + "\n"
    assert Path(SCHEMA_FILE).read_text() == want, (
        "ContainerSpec changed: run `python -m stackd.runtime.containerspec` to write "
        "stackd/runtime/containerspec.schema.json again")


def same(view: Any, model: Any, where: str = "spec") -> None:
    """Every field of the model reads the same through the view."""
    if isinstance(model, pydantic.BaseModel):
        assert isinstance(view, SpecView), where
        for name in type(model).model_fields:
            same(getattr(view, name), getattr(model, name), f"{where}.{name}")
    elif isinstance(model, tuple):
        assert isinstance(view, tuple) and len(view) == len(model), where
        for i, (v, m) in enumerate(zip(view, model, strict=True)):
            same(v, m, f"{where}.{i}")
    else:
        assert view == model and type(view) is type(model), (where, view, model)


@pytest.mark.parametrize("spec", [
    FULL, ContainerSpec(id="c", name="c", layers=(), process=ProcessSpec(args=("x",)))])
def test_a_view_reads_as_the_model_does(spec: ContainerSpec) -> None:
    view = load_spec(spec.model_dump(mode="json"))
    same(view, spec)
    assert dump_spec(view) == spec.model_dump(mode="json")


def test_defaults_are_the_models() -> None:
    minimal = {"id": "c", "name": "c", "layers": [], "process": {"args": ["x"]}}
    same(load_spec(minimal), ContainerSpec.model_validate(minimal))
    assert dump_spec(load_spec(minimal)) == ContainerSpec.model_validate(minimal).model_dump(
        mode="json")


def test_a_view_is_read_only() -> None:
    view: Any = load_spec(FULL.model_dump(mode="json"))
    with pytest.raises(AttributeError):
        view.id = "other"
    with pytest.raises(AttributeError, match="no field 'nonsense'"):
        _ = view.nonsense


def test_devices_resolve_in_a_view_as_in_the_model() -> None:
    data = FULL.model_dump(mode="json")
    resolved = resolve_devices(load_spec(data))
    want = resolve_devices(FULL)
    same(resolved, want)
    assert dump_spec(resolved) == want.model_dump(mode="json")
    assert [device_rule(d) for d in resolved.devices] == ["c 1:3 rw"]
    assert v1_device_writes(False, resolved.devices)[-1] == (
        "devices", "devices.allow", "c 1:3 rw")


def mutated(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(FULL.model_dump(mode="json"))
    *parents, last = path.split(".")
    node: Any = data
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if value is DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


DELETE = object()
# A hostile client's specs: each is refused by the model and by the monitor, which names
# the field. (The monitor is stricter than the model's lax mode: it takes JSON types as
# a dump writes them, not "1" for 1; the daemon sends only dumps.)
HOSTILE = [
    ("process", DELETE, "spec.process: field required"),
    ("process.args", "sh -c x", "spec.process.args: should be an array"),
    ("process.args.0", 1, "spec.process.args.0: should be a string"),
    ("process.console_rows", 10001, "spec.process.console_rows: should be <= 10000"),
    ("process.console_cols", -1, "spec.process.console_cols: should be >= 0"),
    ("process.terminal", "maybe", "spec.process.terminal: should be a boolean"),
    ("process.rlimits.0.soft", "one", "spec.process.rlimits.0.soft: should be an integer"),
    ("devices.0.permissions", "rwx", "spec.devices.0.permissions: should match"),
    ("devices.0.permissions", "rw\n", "spec.devices.0.permissions: should match"),
    ("devices.0.type", "p", "spec.devices.0.type: should be one of 'c', 'b'"),
    # A device rule the monitor would write to devices.allow (or compile) as it is.
    ("device_cgroup_rules", ["a *:* rwm\nc 1:1 rwm"], "spec.device_cgroup_rules.0: should match"),
    ("device_cgroup_rules", ["c 1:1 rwx"], "spec.device_cgroup_rules.0: should match"),
    ("resources.memory_swappiness", 101, "spec.resources.memory_swappiness: should be <= 100"),
    ("mounts.0.type", "overlay", "spec.mounts.0.type: should be one of"),
    ("mounts.0.size", 1.5, "spec.mounts.0.size: should be an integer"),
    ("mounts.3.subpath", "a/../..", "spec.mounts.3.subpath: should match"),
    ("mounts.3.subpath", "/etc", "spec.mounts.3.subpath: should match"),
    ("mounts.2.uid", -1, "spec.mounts.2.uid: should be >= 0"),
    ("namespaces.cgroup", "private", "spec.namespaces.cgroup: should be one of"),
    ("labels", {"a": 1}, "spec.labels.a: should be a string"),
    ("files", ["/etc/hosts"], "spec.files: should be an object"),
    ("security.sysctls", None, "spec.security.sysctls: should be an object"),
    ("security.smuggled", True, "spec.security.smuggled: extra inputs are not permitted"),
    ("stop_grace", "ten", "spec.stop_grace: should be a number"),
    ("log", [], "spec.log: should be an object"),
]


@pytest.mark.parametrize(("path", "value", "message"), HOSTILE)
def test_a_hostile_spec_is_refused_as_the_model_refuses_it(
        path: str, value: Any, message: str) -> None:
    data = mutated(path, value)
    with pytest.raises(pydantic.ValidationError):
        ContainerSpec.model_validate(data)
    with pytest.raises(SpecError, match=f"^invalid container spec: {message}"):
        protocol.request_spec({"spec": data})


@pytest.mark.parametrize("spec", [None, "x", [], 7, {"id": "x"}])
def test_no_spec_at_all_is_a_spec_error(spec: Any) -> None:
    with pytest.raises(SpecError):
        protocol.request_spec({"spec": spec})


def test_a_spec_without_its_defaults_reads_as_the_model() -> None:
    """What the daemon sends (runtime.wire_spec) reads through the view as the whole
    model does: the monitor fills each left-out field from the schema's default."""
    from stackd.runtime.runtime import wire_spec

    sent = wire_spec(FULL)
    assert "seed_plain" not in json.dumps(sent)  # a default: not sent
    same(load_spec(sent), FULL)


def test_a_monitor_of_an_older_stackd_takes_what_uses_nothing_newer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The monitor outlives the daemon's upgrade. Every spec used to be sent whole, so
    an older monitor refused each one, each field it did not know being there at its
    default; now it refuses only a spec that uses one."""
    from stackd.runtime import specview
    from stackd.runtime.runtime import wire_spec

    older = copy.deepcopy(specview.schema())
    del older["$defs"]["Mount"]["properties"]["seed_plain"]
    monkeypatch.setattr(specview, "_schema", older)
    plain = FULL.model_copy(update={"mounts": FULL.mounts[:2]})
    load_spec(wire_spec(plain))
    with pytest.raises(SpecError, match="seed_plain: extra inputs are not permitted"):
        load_spec(plain.model_dump(mode="json"))  # as it was sent before
    uses = plain.model_copy(update={"mounts": (
        Mount(type="volume", target="/v", source="/vol", seed_plain=True),)})
    with pytest.raises(SpecError, match="seed_plain: extra inputs are not permitted"):
        load_spec(wire_spec(uses))
