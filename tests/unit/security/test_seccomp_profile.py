"""Docker-format seccomp profiles: parsing errors, conditions, and the default profile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stackd.runtime.containerspec import ContainerSpec, Namespaces, ProcessSpec, Security
from stackd.runtime.security import SecurityOptionError, compute_capabilities, prepare
from stackd.runtime.security.libseccomp import ACT_ALLOW, ACT_ERRNO
from stackd.runtime.security.plan import _default_profile_text
from stackd.runtime.security.seccomp_profile import parse_profile, resolve_profile

DEFAULT_CAPS = compute_capabilities(privileged=False, cap_add=(), cap_drop=()).bounding


def resolve(profile: dict, caps: frozenset[str] = DEFAULT_CAPS, kernel: tuple[int, int] = (6, 1),
            native: str = "x86_64"):  # type: ignore[no-untyped-def]
    return resolve_profile(parse_profile(json.dumps(profile), "test.json"), caps=caps,
                           native=native, kernel=kernel)


def allowed(resolved) -> set[str]:  # type: ignore[no-untyped-def]
    return {r.syscall for r in resolved.rules if r.action == ACT_ALLOW}


def default() -> dict:  # type: ignore[type-arg]
    return json.loads(_default_profile_text())


def test_default_profile_denies_the_escape_syscalls_with_eperm() -> None:
    got = resolve(default())
    assert got.default_action == ACT_ERRNO | 1
    assert got.arches == ("x86_64", "x86", "x32")
    ok = allowed(got)
    for name in ("read", "write", "execve", "openat", "socket", "setresuid", "capset",
                 "ptrace", "chroot"):
        assert name in ok, name
    for name in ("mount", "umount2", "reboot", "init_module", "finit_module", "kexec_load",
                 "open_by_handle_at", "bpf", "keyctl", "unshare", "setns", "sethostname",
                 "pivot_root", "swapon", "syslog", "perf_event_open", "acct", "iopl"):
        assert name not in ok, name


def test_default_clone_is_allowed_only_without_namespace_flags_and_clone3_says_enosys() -> None:
    rules = [r for r in resolve(default()).rules if r.syscall in ("clone", "clone3")]
    clone = next(r for r in rules if r.syscall == "clone")
    assert clone.action == ACT_ALLOW
    (cond,) = clone.conditions
    assert (cond.index, cond.op, cond.value_two) == (0, "SCMP_CMP_MASKED_EQ", 0)
    assert cond.value & 0x10000000  # CLONE_NEWUSER among the masked flags
    clone3 = next(r for r in rules if r.syscall == "clone3")
    assert clone3.action == ACT_ERRNO | 38


def test_capabilities_open_their_syscalls() -> None:
    admin = resolve(default(), caps=DEFAULT_CAPS | {"SYS_ADMIN"})
    ok = allowed(admin)
    assert {"mount", "unshare", "setns", "sethostname", "clone3"} <= ok
    clone_rules = [r for r in admin.rules if r.syscall == "clone"]
    assert [r.conditions for r in clone_rules] == [()]  # unrestricted with SYS_ADMIN
    assert {"init_module", "finit_module"} <= allowed(
        resolve(default(), caps=DEFAULT_CAPS | {"SYS_MODULE"}))
    assert "reboot" in allowed(resolve(default(), caps=DEFAULT_CAPS | {"SYS_BOOT"}))
    assert "chroot" not in allowed(resolve(default(), caps=DEFAULT_CAPS - {"SYS_CHROOT"}))


def test_min_kernel_condition() -> None:
    assert "ptrace" not in allowed(resolve(default(), kernel=(4, 4)))
    assert "ptrace" in allowed(resolve(default(), kernel=(4, 8)))


def test_arch_conditions_and_legacy_architectures() -> None:
    prof = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
                {"names": ["iopl"], "action": "SCMP_ACT_ERRNO",
                 "includes": {"arches": ["SCMP_ARCH_X86_64"]}},
                {"name": "swapon", "action": "SCMP_ACT_ERRNO",
                 "excludes": {"arches": ["SCMP_ARCH_X86_64"]}}]}
    got = resolve(prof)
    assert got.arches == ("x86_64",)
    assert [r.syscall for r in got.rules] == ["iopl"]
    assert resolve(prof, native="aarch64").rules[0].syscall == "swapon"


def test_conditions_on_one_argument_become_separate_rules() -> None:
    prof = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                  {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]}
    rules = resolve(prof).rules
    assert [[c.value for c in r.conditions] for r in rules] == [[0], [8]]


@pytest.mark.parametrize(("profile", "message"), [
    ("{", "not valid JSON"),
    ('{"defaultAction": "SCMP_ACT_NOPE"}', "unknown action 'SCMP_ACT_NOPE'"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ERRNO"}]}',
     "syscalls[0] needs names"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": '
     '"SCMP_ACT_ERRNO", "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]}',
     "syscalls[0].args[0].index must be 0 to 5"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": '
     '"SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "EQ"}]}]}',
     "syscalls[0].args[0].op 'EQ'"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "wat": 1}', "unknown field(s) wat"),
    ('{"defaultAction": "SCMP_ACT_NOTIFY"}', "SCMP_ACT_NOTIFY needs a listener"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "archMap": [{"architecture": "X86"}]}',
     "unknown architecture 'X86'"),
])
def test_bad_profiles_name_the_problem(profile: str, message: str) -> None:
    with pytest.raises(SecurityOptionError) as info:
        parse_profile(profile, "/etc/p.json")
    assert str(info.value).startswith("seccomp profile /etc/p.json: ")
    assert message in str(info.value)


def spec(**security: object) -> ContainerSpec:
    return ContainerSpec(id="c1", name="c1", layers=("/nonexistent",),
                         process=ProcessSpec(args=("true",)),
                         security=Security(**security))  # type: ignore[arg-type]


def test_prepare_compiles_default_and_skips_for_unconfined_and_privileged() -> None:
    plan = prepare(spec())
    assert plan.seccomp_bpf and len(plan.seccomp_bpf) % 8 == 0
    assert plan.no_new_privs and not plan.privileged
    assert prepare(spec(seccomp="unconfined")).seccomp_bpf is None
    priv = prepare(spec(privileged=True))
    assert priv.seccomp_bpf is None and not priv.no_new_privs
    assert prepare(spec(no_new_privileges=False)).no_new_privs is False
    assert prepare(spec(privileged=True, no_new_privileges=True)).no_new_privs is True


def test_prepare_reads_a_custom_profile_file(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}))
    plan = prepare(spec(seccomp=str(path)))
    assert plan.seccomp_bpf and plan.seccomp_source == str(path)
    assert plan.seccomp_bpf != prepare(spec()).seccomp_bpf


def test_prepare_refuses_missing_or_relative_profiles(tmp_path: Path) -> None:
    with pytest.raises(SecurityOptionError, match=r"cannot read seccomp profile .*nope\.json"):
        prepare(spec(seccomp=str(tmp_path / "nope.json")))
    with pytest.raises(SecurityOptionError, match="must be an absolute path"):
        prepare(spec(seccomp="profile.json"))


def test_prepare_refuses_a_net_sysctl_with_host_network() -> None:
    s = ContainerSpec(id="c1", name="c1", layers=("/x",), process=ProcessSpec(args=("true",)),
                      namespaces=Namespaces(net="host"),
                      security=Security(sysctls={"net.ipv4.ip_forward": "1"}))
    with pytest.raises(SecurityOptionError, match=r"net\.ipv4\.ip_forward"):
        prepare(s)
    # The namespace stackd runs in, given as a path, is the host's network too.
    s2 = s.model_copy(update={"namespaces": Namespaces(net="/proc/self/ns/net")})
    with pytest.raises(SecurityOptionError, match="host's network namespace"):
        prepare(s2)
