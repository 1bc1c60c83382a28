"""Which sysctls a container may set, and the errors for the rest."""

from __future__ import annotations

import pytest

from stackd.runtime.security import SecurityOptionError, Sysctl, validate_sysctls


def check(sysctls: dict[str, str], *, net_host: bool = False, ipc_host: bool = False,
          uts_host: bool = False) -> tuple[Sysctl, ...]:
    return validate_sysctls(sysctls, net_is_host=net_host, ipc_is_host=ipc_host,
                            uts_is_host=uts_host)


def test_namespaced_sysctls_are_accepted_in_name_order() -> None:
    got = check({"net.ipv4.ip_forward": "1", "kernel.shmmax": "1000000",
                 "fs.mqueue.msg_max": "20", "kernel.sem": "250 32000 32 128",
                 "kernel.msgmax": "9000", "kernel.domainname": "example.org"})
    assert [s.name for s in got] == ["fs.mqueue.msg_max", "kernel.domainname", "kernel.msgmax",
                                     "kernel.sem", "kernel.shmmax", "net.ipv4.ip_forward"]


def test_proc_path_from_dots_or_slashes() -> None:
    assert Sysctl("net.ipv4.ip_forward", "1").proc_path == "/proc/sys/net/ipv4/ip_forward"
    # A name with slashes keeps dots inside components (VLAN interface names).
    assert Sysctl("net/ipv4/conf/eth0.100/forwarding", "1").proc_path == \
        "/proc/sys/net/ipv4/conf/eth0.100/forwarding"


@pytest.mark.parametrize("name", ["kernel.panic", "vm.swappiness", "fs.file-max",
                                  "kernel.pid_max", "kernel.modules_disabled"])
def test_host_wide_sysctls_are_refused_with_the_reason(name: str) -> None:
    with pytest.raises(SecurityOptionError) as info:
        check({name: "1"})
    assert str(info.value).startswith(f"sysctl {name} is not namespaced")


def test_net_sysctl_refused_when_sharing_the_host_network() -> None:
    with pytest.raises(SecurityOptionError, match="host's network namespace"):
        check({"net.core.somaxconn": "1024"}, net_host=True)
    assert check({"kernel.shmmax": "1"}, net_host=True)


def test_ipc_sysctl_refused_when_sharing_host_ipc() -> None:
    with pytest.raises(SecurityOptionError, match="host's IPC namespace"):
        check({"fs.mqueue.queues_max": "10"}, ipc_host=True)


def test_domainname_needs_own_uts_and_hostname_is_never_a_sysctl() -> None:
    with pytest.raises(SecurityOptionError, match="UTS"):
        check({"kernel.domainname": "x"}, uts_host=True)
    with pytest.raises(SecurityOptionError, match="hostname: on the service"):
        check({"kernel.hostname": "x"})


def test_malformed_name() -> None:
    with pytest.raises(SecurityOptionError, match="not a valid sysctl name"):
        check({"net..ipv4": "1"})
