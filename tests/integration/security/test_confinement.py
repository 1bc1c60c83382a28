"""What a container's process holds: capability sets, no_new_privs, seccomp mode, and
the sysctls it was given — read from /proc/self/status and /proc/sys inside."""

from __future__ import annotations

import pytest
from security_helpers import run_to_end

from stackd.errors import SpecError
from stackd.runtime.containerspec import Namespaces, Security

pytestmark = pytest.mark.root

STATUS = "grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status"
DOCKER_DEFAULT = "00000000a80425fb"


def parse_status(out: str) -> dict[str, str]:
    return dict(line.split(":\t") for line in out.splitlines())


async def test_root_gets_dockers_default_set_no_new_privs_and_a_filter(rt, make_spec):
    _, out = await run_to_end(rt, make_spec("caps-root", "sh", "-c", STATUS))
    assert parse_status(out) == {
        "CapInh": "0000000000000000", "CapPrm": DOCKER_DEFAULT, "CapEff": DOCKER_DEFAULT,
        "CapBnd": DOCKER_DEFAULT, "CapAmb": "0000000000000000",
        "NoNewPrivs": "1", "Seccomp": "2"}


async def test_non_root_user_holds_nothing_but_keeps_the_bounding_set(rt, make_spec):
    _, out = await run_to_end(rt, make_spec("caps-user", "sh", "-c", STATUS, user="app",
                                            security=Security(cap_add=("NET_ADMIN",))))
    status = parse_status(out)
    assert status["CapPrm"] == status["CapEff"] == status["CapInh"] == status["CapAmb"] \
        == "0000000000000000"
    assert int(status["CapBnd"], 16) == 0xA80425FB | (1 << 12)  # + NET_ADMIN


async def test_cap_drop_all_with_one_added_back(rt, make_spec):
    _, out = await run_to_end(rt, make_spec(
        "caps-min", "sh", "-c", STATUS,
        security=Security(cap_drop=("ALL",), cap_add=("cap_net_bind_service",))))
    status = parse_status(out)
    assert int(status["CapEff"], 16) == int(status["CapBnd"], 16) == 1 << 10


async def test_privileged_has_every_capability_the_host_has_and_no_filter(rt, make_spec):
    with open("/proc/self/status") as f:
        host_bounding = parse_status("".join(
            line for line in f if line.startswith("CapBnd")))["CapBnd"]
    _, out = await run_to_end(rt, make_spec("caps-priv", "sh", "-c", STATUS,
                                            security=Security(privileged=True)))
    status = parse_status(out)
    assert status["CapEff"] == status["CapBnd"] == host_bounding
    assert (status["NoNewPrivs"], status["Seccomp"]) == ("0", "0")


async def test_no_new_privileges_false_keeps_the_filter(rt, make_spec):
    _, out = await run_to_end(rt, make_spec("nnp-off", "sh", "-c", STATUS,
                                            security=Security(no_new_privileges=False)))
    status = parse_status(out)
    assert (status["NoNewPrivs"], status["Seccomp"]) == ("0", "2")


async def test_namespaced_sysctls_are_set_inside_only(rt, make_spec):
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        host_forward = f.read()
    sysctls = {"net.ipv4.ip_forward": "1", "net.core.somaxconn": "1234",
               "kernel.shmmax": "123456789", "fs.mqueue.msg_max": "42"}
    exit_status, out = await run_to_end(rt, make_spec(
        "sysctls", "cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/core/somaxconn",
        "/proc/sys/kernel/shmmax", "/proc/sys/fs/mqueue/msg_max",
        security=Security(sysctls=sysctls)))
    assert (exit_status.code, out.split()) == (0, ["1", "1234", "123456789", "42"])
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        assert f.read() == host_forward


async def test_sysctls_cannot_be_changed_from_inside_afterwards(rt, make_spec):
    exit_status, out = await run_to_end(rt, make_spec(
        "sysctl-ro", "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward",
        security=Security(sysctls={"net.ipv4.ip_forward": "0"})))
    assert exit_status.code != 0
    assert "Read-only file system" in out


@pytest.mark.parametrize(("cid", "sysctls", "namespaces", "message"), [
    ("bad-global", {"kernel.panic": "1"}, Namespaces(), "sysctl kernel.panic is not namespaced"),
    ("bad-netns", {"net.ipv4.ip_forward": "1"}, Namespaces(net="host"),
     "sysctl net.ipv4.ip_forward cannot be set: the container shares the host's network"),
])
async def test_refused_sysctls_fail_create_with_a_named_error(rt, make_spec, cid, sysctls,
                                                               namespaces, message):
    with pytest.raises(SpecError) as info:
        await rt.create(make_spec(cid, "true", namespaces=namespaces,
                                  security=Security(sysctls=sysctls)))
    assert message in str(info.value)
    assert await rt.list() == []


async def test_bad_capability_and_profile_fail_create(rt, make_spec, tmp_path):
    with pytest.raises(SpecError, match="unknown capability 'CAP_FLY' in cap_add"):
        await rt.create(make_spec("bad-cap", "true", security=Security(cap_add=("CAP_FLY",))))
    bad = tmp_path / "bad.json"
    bad.write_text('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"]}]}')
    with pytest.raises(SpecError, match=r"seccomp profile .*bad\.json: syscalls\[0\]\.action"):
        await rt.create(make_spec("bad-prof", "true", security=Security(seccomp=str(bad))))
