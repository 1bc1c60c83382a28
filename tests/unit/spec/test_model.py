"""The Stack model: frozen, equality without places, places on demand, short syntax in."""

from __future__ import annotations

import re
from datetime import timedelta

import pydantic
import pytest

from stackd.errors import Location
from stackd.spec import Stack, load_text


def test_frozen() -> None:
    stack = load_text("services:\n  web: {image: x}\n")
    with pytest.raises(pydantic.ValidationError):
        stack.services["web"].image = "y"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        stack.name = "other"  # type: ignore[misc]


def test_equality_ignores_where_things_were_written() -> None:
    a = load_text("services:\n  web: {image: x, ports: ['80']}\n")
    b = load_text("# comment\nservices:\n\n  web:\n    ports:\n      - 80\n    image: x\n")
    assert a == b
    assert a.location_of(("services", "web")) != b.location_of(("services", "web"))
    assert hash(a.services["web"].ports[0]) == hash(b.services["web"].ports[0])


def test_location_of_elements_and_fallback() -> None:
    stack = load_text(
        "services:\n"
        "  web:\n"
        "    image: x\n"
        "    depends_on:\n"
        "      - db\n"
        "    ports: ['8000-8001:80-81']\n"
        "  db: {image: y}\n", file="stack.yaml")
    assert stack.location_of(("services", "web", "depends_on", "db")) == Location(
        "stack.yaml", 5, 9)
    assert stack.location_of(("services", "db")) == Location("stack.yaml", 7, 3)
    # Both ports come from one short entry, so both point at it.
    assert stack.location_of(("services", "web", "ports", 1)) == Location("stack.yaml", 6, 13)
    # Elements the loader added (the default network) point into the service that got them.
    added = stack.location_of(("services", "db", "networks", "default"))
    assert added is not None and (added.file, added.line) == ("stack.yaml", 7)
    assert stack.location_of(("nothing",)) is None


def test_model_validate_accepts_short_syntax_without_locations() -> None:
    stack = Stack.model_validate({
        "name": "demo",
        "services": {
            "web": {"image": "x", "ports": ["8080:80"], "depends_on": ["db"],
                    "healthcheck": {"test": "true", "interval": "5s"},
                    "command": "sleep 10"},
            "db": {"image": "y"},
        },
    })
    web = stack.services["web"]
    assert web.ports[0].published == "8080"
    assert web.depends_on["db"].condition == "service_started"
    assert web.healthcheck is not None and web.healthcheck.interval == timedelta(seconds=5)
    assert web.command == ("sleep", "10")
    assert stack.location_of(("services", "web")) is None


def test_json_round_trip_through_the_model() -> None:
    stack = load_text("services:\n  web:\n    image: x\n    stop_grace_period: 1m30s\n"
                      "    shm_size: 1g\n    x-meta: {owner: ops}\n")
    again = Stack.model_validate(stack.to_compose())
    assert again == stack
    assert stack.to_compose()["services"]["web"]["stop_grace_period"] == "1m30s"
    assert stack.to_compose()["services"]["web"]["x-meta"] == {"owner": "ops"}


def test_every_element_is_hashable_so_it_can_sit_in_sets() -> None:
    stack = load_text("services:\n  web: {image: x, ports: ['80', '80'], environment: {A: b}}\n")
    web = stack.services["web"]
    assert len(set(web.ports)) == 1
    assert hash(web) == hash(load_text("services:\n  web: {image: x, ports: ['80', '80'], "
                                       "environment: {A: b}}\n").services["web"])
    assert isinstance(hash(stack), int)


def test_built_from_model_instances() -> None:
    from stackd.spec.model import Network, Service

    stack = Stack(name="p", services={"web": Service(image="x", command=("a", "b"))},
                  networks={"front": Network()})
    assert stack.services["web"].command == ("a", "b")
    assert stack == Stack.model_validate(stack.to_compose())


def test_a_service_alone_accepts_short_syntax() -> None:
    from stackd.spec.model import Service

    svc = Service.model_validate({"image": "x", "ports": ["8080:80"], "command": "sleep 5",
                                  "environment": ["A=1"]})
    assert (svc.ports[0].published, svc.command, svc.environment) == (
        "8080", ("sleep", "5"), {"A": "1"})


def test_built_from_nested_model_instances() -> None:
    from stackd.spec.model import Dependency, Port, Service, ServiceVolume

    web = Service(image="x", ports=(Port(target=80, published="8080"),),
                  volumes=(ServiceVolume(type="volume", source="d", target="/d"),),
                  depends_on={"db": Dependency(condition="service_healthy")},
                  dns=("1.1.1.1",))
    stack = Stack(name="p", services={"web": web, "db": Service(image="y")})
    assert stack.services["web"] == web


@pytest.mark.parametrize(("pool", "said"), [
    ("{subnet: 10.5.0.0/16, ip_range: 10.6.0.0/24}",
     "ip_range 10.6.0.0/24 is not inside subnet 10.5.0.0/16"),
    ("{subnet: 10.5.0.0/16, aux_addresses: {r: 10.9.0.1}}",
     "aux_addresses r: '10.9.0.1' is not an address of subnet 10.5.0.0/16"),
    ("{ip_range: 10.6.0.0/24}", "ip_range and aux_addresses need the subnet"),
    ("{subnet: 'fd00::/64'}", "IPv6 is not supported yet"),
])
def test_an_ipam_pool_stackd_cannot_apply_is_refused(pool: str, said: str) -> None:
    from stackd.errors import SpecError

    with pytest.raises(SpecError, match=re.escape(said)):
        load_text("services:\n  a: {image: x}\nnetworks:\n  n:\n"
                  f"    ipam: {{config: [{pool}]}}\n", environ={})


@pytest.mark.parametrize(("keys", "said"), [
    ("cpuset: 'zero'", "'zero' is not a list of CPUs"),
    ("{cpus: 0.5, cpu_quota: 50000}", "cpus and cpu_quota both limit the CPU"),
    ("{uts: host, hostname: box}", "hostname with uts: host"),
    ("uts: private", "'private' is not supported yet"),
    ("cpu_period: 10", "greater than or equal to 1000"),
])
def test_cpu_and_uts_keys_that_contradict_or_are_malformed(keys: str, said: str) -> None:
    from stackd.errors import SpecError

    body = keys if keys.startswith("{") else "{" + keys + "}"
    with pytest.raises(SpecError, match=re.escape(said)):
        load_text("services:\n  a: " + body[:-1] + ", image: x}\n", environ={})


def test_cgroup_keys_are_read_and_a_malformed_device_rule_is_refused() -> None:
    from stackd.errors import SpecError

    stack = load_text("services:\n  a:\n    image: x\n    mem_swappiness: 0\n"
                      "    oom_kill_disable: true\n"
                      "    device_cgroup_rules: ['c 188:* rmw', ' b  7:0   r ']\n",
                      environ={})
    a = stack.services["a"]
    assert (a.mem_swappiness, a.oom_kill_disable) == (0, True)
    assert a.device_cgroup_rules == ("c 188:* rmw", "b 7:0 r")
    for bad, said in (("['c 188:* rwx']", "'c 188:* rwx' is not `TYPE MAJOR:MINOR ACCESS`"),
                      ("['p 1:3 r']", "'p 1:3 r' is not"),
                      ('["a *:* rwm\\nc 1:1 r"]', "is not `TYPE MAJOR:MINOR ACCESS`")):
        with pytest.raises(SpecError, match=re.escape(said)):
            load_text(f"services:\n  a:\n    image: x\n    device_cgroup_rules: {bad}\n",
                      environ={})
    with pytest.raises(SpecError, match="mem_swappiness"):
        load_text("services:\n  a: {image: x, mem_swappiness: 101}\n", environ={})


def test_blkio_config_is_read_with_compose_units_and_bad_values_are_refused() -> None:
    from stackd.errors import SpecError

    a = load_text("""services:
  a:
    image: x
    blkio_config:
      weight: 300
      weight_device: [{path: /dev/sda, weight: 400}]
      device_read_bps: [{path: /dev/sdb, rate: 12mb}]
      device_write_bps: [{path: /dev/sdb, rate: 1024k}]
      device_read_iops: [{path: /dev/sdb, rate: 120}]
      device_write_iops: [{path: /dev/sdb, rate: 30}]
""", environ={}).services["a"]
    cfg = a.blkio_config
    assert cfg is not None
    assert (cfg.weight, cfg.weight_device[0].weight) == (300, 400)
    assert [r.rate for r in (cfg.device_read_bps + cfg.device_write_bps
                             + cfg.device_read_iops + cfg.device_write_iops)] == [
        12 * 1024 * 1024, 1024 * 1024, 120, 30]
    for bad, said in (("{weight: 5}", "weight"),
                      ("{weight_device: [{path: /dev/sda, weight: 1001}]}", "weight"),
                      ("{device_read_bps: [{path: sda, rate: 1mb}]}",
                       "'sda': the host path must be absolute"),
                      ("{device_read_iops: [{path: /dev/sda, rate: -1}]}", "rate"),
                      ("{device_read_bps: [{path: /dev/sda}]}", "rate"),
                      ("{read_bps: []}", "unknown key 'read_bps'")):
        with pytest.raises(SpecError, match=re.escape(said)):
            load_text(f"services:\n  a:\n    image: x\n    blkio_config: {bad}\n",
                      environ={})


@pytest.mark.parametrize("labels", [
    "{io.stackd.anonymous-volumes: other_data}", "[io.stackd.project=other]"])
def test_a_label_under_stackds_prefix_is_refused(labels: str) -> None:
    """stackd acts on these labels: one naming another stack's volume as the
    container's own anonymous volume made `down` set that volume apart."""
    from stackd.errors import SpecError

    with pytest.raises(SpecError, match=r"the io\.stackd\. prefix is stackd's own"):
        load_text(f"services:\n  x:\n    image: busybox\n    labels: {labels}\n",
                  environ={})
    ok = load_text("services:\n  x:\n    image: busybox\n    labels: {io.stackdx: 1}\n",
                   environ={})
    assert ok.services["x"].labels == {"io.stackdx": "1"}


def volume_of(body: str, directory: str = "/proj") -> tuple[str | None, dict[str, str]]:
    stack = load_text("services:\n  x:\n    image: busybox\n    volumes: [data:/d]\n"
                      f"volumes:\n  data:\n{body}", environ={}, project_directory=directory)
    return stack.volumes["data"].bind_device, stack.volumes["data"].driver_opts


@pytest.mark.parametrize(("body", "device"), [
    ("    driver: local\n    driver_opts: {type: none, o: bind, device: /srv/data}\n",
     "/srv/data"),
    ("    driver_opts: {type: none, o: rbind, device: /srv/data}\n", "/srv/data"),
    # compose-go resolves a relative device of a local bind against the project.
    ("    driver: local\n    driver_opts: {type: none, o: bind, device: ./data}\n",
     "/proj/data"),
    ("    driver: local\n", None),
    ("    {}\n", None),
])
def test_a_local_volume_binding_a_host_directory(body: str, device: str | None) -> None:
    assert volume_of(body)[0] == device


@pytest.mark.parametrize(("body", "said"), [
    ("    driver: rexray/ebs\n", "volume driver 'rexray/ebs' is not supported"),
    ("    driver_opts: {type: nfs, o: 'addr=10.0.0.1,rw', device: ':/export'}\n",
     "driver_opts: stackd's local volumes take them only as a bind of a host directory"),
    ("    driver_opts: {type: tmpfs, device: tmpfs, o: size=100m}\n", "is not supported yet"),
    # Not resolved by compose-go (no driver: local), so relative it stays, and is refused.
    ("    driver_opts: {type: none, o: bind, device: ./data}\n", "is not supported yet"),
])
def test_volume_drivers_and_options_stackd_cannot_honour_are_refused(body: str,
                                                                     said: str) -> None:
    """They were read and dropped: the volume was an empty directory of stackd's."""
    from stackd.errors import SpecError

    with pytest.raises(SpecError, match=re.escape(said)):
        volume_of(body)


def network_of(opts: str, extra: str = "") -> tuple[bool, str | None]:
    stack = load_text("services:\n  x:\n    image: busybox\n    networks: [n]\n"
                      f"networks:\n  n:\n    driver_opts: {opts}\n{extra}", environ={})
    return stack.networks["n"].icc, stack.networks["n"].host_binding_ipv4


@pytest.mark.parametrize(("opts", "want"), [
    ("{com.docker.network.bridge.enable_icc: 'false'}", (False, None)),
    ("{com.docker.network.bridge.enable_icc: 'true'}", (True, None)),
    ("{com.docker.network.bridge.host_binding_ipv4: 127.0.0.1}", (True, "127.0.0.1")),
    ("{com.docker.network.driver.mtu: '1400'}", (True, None)),
])
def test_bridge_options_stackd_follows(opts: str, want: tuple[bool, str | None]) -> None:
    assert network_of(opts) == want


@pytest.mark.parametrize(("opts", "said"), [
    ("{com.docker.network.bridge.name: br-app}",
     "'com.docker.network.bridge.name' is not supported yet"),
    ("{com.docker.network.bridge.enable_ip_masquerade: 'false'}",
     "'com.docker.network.bridge.enable_ip_masquerade' is not supported yet"),
    ("{com.docker.network.bridge.enable_icc: 'no'}", "must be true or false, not 'no'"),
    ("{com.docker.network.bridge.host_binding_ipv4: localhost}",
     "must be an IPv4 address, not 'localhost'"),
])
def test_bridge_options_stackd_cannot_follow_are_refused(opts: str, said: str) -> None:
    """They were read and dropped: enable_icc false left the containers talking."""
    from stackd.errors import SpecError

    with pytest.raises(SpecError, match=re.escape(said)):
        network_of(opts)


def test_a_network_label_under_stackds_prefix_is_refused() -> None:
    """stackd keeps a network's own facts in its labels (io.stackd.overlay,
    io.stackd.reserved…): a stack file's label there would be read as one."""
    from stackd.errors import SpecError

    with pytest.raises(SpecError, match=r"label 'io\.stackd\.reserved': the io\.stackd\. "):
        load_text("services:\n  x:\n    image: busybox\n    networks: [n]\n"
                  "networks:\n  n:\n    labels: {io.stackd.reserved: 10.0.0.9}\n", environ={})
