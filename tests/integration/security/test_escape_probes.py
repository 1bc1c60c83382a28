"""An escape probe in a container with default settings is refused each way out; the
matching capability, `privileged` or `seccomp: unconfined` lets the same call through.

"Allowed" probes are built to change nothing on the host (see probe.c)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from security_helpers import run_to_end

from stackd.runtime.containerspec import Namespaces, Security

pytestmark = pytest.mark.root


@pytest.fixture
def outside_process() -> Iterator[int]:
    """A host process the container must not be able to trace."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc.pid
    proc.kill()
    proc.wait()


# action, what the denied container gets, what the allowed container gets
CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("mount", {}, {"security": Security(cap_add=("SYS_ADMIN",))}),
    # The same call through the 32-bit and x32 tables meets the same rules.
    ("mount-i386", {}, {"security": Security(cap_add=("SYS_ADMIN",))}),
    ("mount-x32", {}, {"security": Security(cap_add=("SYS_ADMIN",))}),
    ("reboot", {}, {"security": Security(cap_add=("SYS_BOOT",))}),
    ("module", {}, {"security": Security(cap_add=("SYS_MODULE",))}),
    # Docker grants NET_RAW by default, and so do we: a container that drops it (or
    # runs as a user) cannot open a raw socket.
    ("rawsocket", {"security": Security(cap_drop=("NET_RAW",))}, {}),
    ("sysrq", {}, {"security": Security(privileged=True)}),
    ("kcore", {}, {"security": Security(privileged=True)}),
    ("userns", {}, {"security": Security(seccomp="unconfined")}),
    # On the host's UTS namespace; the probe sets the hostname it already has.
    ("hostname", {"namespaces": Namespaces(uts="host")},
     {"namespaces": Namespaces(uts="host"), "security": Security(cap_add=("SYS_ADMIN",))}),
    ("sysctl", {}, {"security": Security(privileged=True)}),
]


# Files a kernel may be built without (CONFIG_PROC_KCORE, CONFIG_MAGIC_SYSRQ).
NEEDS_FILE = {"sysrq": "/proc/sysrq-trigger", "kcore": "/proc/kcore"}


def _case(action: str, denied: dict[str, Any], allowed: dict[str, Any]) -> Any:
    needs = NEEDS_FILE.get(action)
    missing = needs is not None and not Path(needs).exists()
    return pytest.param(action, denied, allowed, id=action, marks=pytest.mark.skipif(
        missing, reason=f"this kernel has no {needs}; test_masked_and_read_only_proc_files "
        "shows the same protection"))


@pytest.mark.parametrize(("action", "denied", "allowed"), [_case(*c) for c in CASES])
async def test_probe_is_denied_by_default_and_allowed_when_granted(
        rt, make_spec, action, denied, allowed):
    exit_status, out = await run_to_end(rt, make_spec(f"deny-{action}", "/bin/probe", action,
                                                      **denied))
    assert out.startswith(f"denied {action}"), out
    assert exit_status.code == 1

    exit_status, out = await run_to_end(rt, make_spec(f"allow-{action}", "/bin/probe",
                                                      action, **allowed))
    assert out.startswith(f"allowed {action}"), out
    assert exit_status.code == 0


@pytest.mark.parametrize(("cid", "args"), [
    # Masked like /proc/kcore (and readable only with CAP_SYS_ADMIN… when unmasked).
    ("timer-list", ("read", "/proc/timer_list")),
    # Read-only like /proc/sysrq-trigger.
    ("irq-affinity", ("openw", "/proc/irq/default_smp_affinity")),
])
async def test_masked_and_read_only_proc_files(rt, make_spec, cid, args):
    action = args[0]
    exit_status, out = await run_to_end(rt, make_spec(f"deny-{cid}", "/bin/probe", *args))
    assert exit_status.code == 1 and out.startswith(f"denied {action}: "), out
    assert out.split(": ")[1] in ("empty", "EROFS")
    exit_status, out = await run_to_end(rt, make_spec(f"allow-{cid}", "/bin/probe", *args,
                                                      security=Security(privileged=True)))
    assert (exit_status.code, out) == (0, f"allowed {action}")


async def test_raw_socket_denied_to_a_non_root_user(rt, make_spec):
    exit_status, out = await run_to_end(rt, make_spec("raw-user", "/bin/probe", "rawsocket",
                                                      user="app"))
    assert (exit_status.code, out) == (1, "denied rawsocket: EPERM")


async def test_ptrace_of_a_process_outside(rt, make_spec, outside_process):
    pid = str(outside_process)
    # In its own PID namespace the host's processes are not even there.
    _, out = await run_to_end(rt, make_spec("ptrace-ns", "/bin/probe", "ptrace", pid))
    assert out == "denied ptrace: ESRCH"
    host_pid = Namespaces(pid="host")
    exit_status, out = await run_to_end(rt, make_spec("ptrace-host", "/bin/probe", "ptrace",
                                                      pid, namespaces=host_pid))
    assert (exit_status.code, out) == (1, "denied ptrace: EPERM")
    exit_status, out = await run_to_end(rt, make_spec(
        "ptrace-cap", "/bin/probe", "ptrace", pid, namespaces=host_pid,
        security=Security(cap_add=("SYS_PTRACE",))))
    assert (exit_status.code, out) == (0, "allowed ptrace")


async def test_seccomp_denies_even_with_the_capability(rt, make_spec, tmp_path: Path):
    profile = tmp_path / "no-mount.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}))
    exit_status, out = await run_to_end(rt, make_spec(
        "seccomp-custom", "/bin/probe", "mount",
        security=Security(cap_add=("SYS_ADMIN",), seccomp=str(profile))))
    assert (exit_status.code, out) == (1, "denied mount: EACCES")


async def test_capabilities_deny_even_without_seccomp(rt, make_spec):
    exit_status, out = await run_to_end(rt, make_spec(
        "unconfined-mount", "/bin/probe", "mount", security=Security(seccomp="unconfined")))
    assert (exit_status.code, out) == (1, "denied mount: EPERM")
