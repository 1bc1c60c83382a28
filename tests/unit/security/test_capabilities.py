"""Capability arithmetic: Docker's defaults, cap_add/cap_drop, ALL, privileged, users."""

from __future__ import annotations

import pytest

from stackd.runtime.security import (
    DOCKER_DEFAULT_CAPABILITIES,
    SecurityOptionError,
    compute_capabilities,
)
from stackd.runtime.security.capabilities import ALL_CAPABILITIES, capability_mask


def caps(**kw: object) -> frozenset[str]:
    args = {"privileged": False, "cap_add": (), "cap_drop": ()} | kw
    return compute_capabilities(**args).bounding  # type: ignore[arg-type]


def test_default_set_is_dockers() -> None:
    # The mask `docker run busybox grep CapBnd /proc/self/status` prints.
    assert capability_mask(caps()) == 0xA80425FB
    assert caps() == DOCKER_DEFAULT_CAPABILITIES


@pytest.mark.parametrize("spelling", ["NET_ADMIN", "CAP_NET_ADMIN", "cap_net_admin",
                                      "net_admin", " Net_Admin "])
def test_cap_add_accepts_any_spelling(spelling: str) -> None:
    assert caps(cap_add=(spelling,)) == DOCKER_DEFAULT_CAPABILITIES | {"NET_ADMIN"}


def test_cap_drop_removes_from_defaults() -> None:
    assert caps(cap_drop=("CAP_CHOWN", "net_raw")) == \
        DOCKER_DEFAULT_CAPABILITIES - {"CHOWN", "NET_RAW"}


def test_drop_all_then_add_leaves_only_the_adds() -> None:
    assert caps(cap_drop=("ALL",), cap_add=("NET_BIND_SERVICE",)) == {"NET_BIND_SERVICE"}


def test_add_wins_over_drop_of_the_same_capability() -> None:
    assert "KILL" in caps(cap_drop=("KILL",), cap_add=("KILL",))


def test_add_all_minus_named_drops() -> None:
    assert caps(cap_add=("all",), cap_drop=("SYS_ADMIN",)) == ALL_CAPABILITIES - {"SYS_ADMIN"}


def test_privileged_gets_everything_whatever_is_dropped() -> None:
    assert caps(privileged=True, cap_drop=("ALL",)) == ALL_CAPABILITIES


def test_unknown_capability_is_a_typed_error_naming_it() -> None:
    with pytest.raises(SecurityOptionError) as info:
        caps(cap_add=("NET_ADMINN",))
    assert "NET_ADMINN" in str(info.value) and "cap_add" in str(info.value)
    assert info.value.exit_code == 2


def test_root_holds_the_bounding_set_non_root_holds_nothing() -> None:
    sets = compute_capabilities(privileged=False, cap_add=("SYS_PTRACE",), cap_drop=())
    root = sets.for_user(0)
    assert root.effective == root.permitted == root.bounding == sets.bounding
    assert root.inheritable == root.ambient == frozenset()
    user = sets.for_user(1000)
    assert user.bounding == sets.bounding
    assert user.effective == user.permitted == user.inheritable == user.ambient == frozenset()
