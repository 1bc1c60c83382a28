"""Restart decisions, the backoff sequence, healthcheck forms and transitions, the hash."""

from __future__ import annotations

import pytest

from stackd.errors import SpecError
from stackd.reconciler.hash import EXCLUDED, ConfigHash, config_hash
from stackd.reconciler.health import HealthCheck, HealthState, probe_args, step
from stackd.reconciler.restart import (
    MAX_DELAY,
    Backoff,
    RestartPolicy,
    from_deploy,
    parse_restart,
    should_restart,
)
from stackd.runtime.containerspec import ContainerSpec, ProcessSpec


@pytest.mark.parametrize(("text", "policy"), [
    ("no", RestartPolicy("no")),
    ("always", RestartPolicy("always")),
    ("unless-stopped", RestartPolicy("unless-stopped")),
    ("on-failure", RestartPolicy("on-failure")),
    ("on-failure:5", RestartPolicy("on-failure", max_attempts=5)),
])
def test_parse_restart(text: str, policy: RestartPolicy) -> None:
    assert parse_restart(text) == policy


def test_bad_restart_names_the_fix() -> None:
    with pytest.raises(SpecError, match=r'restart: .sometimes. is not.*\n  hint: use "no"'):
        parse_restart("sometimes")
    with pytest.raises(SpecError, match="condition: 'never'"):
        from_deploy("never")


def test_should_restart_table() -> None:
    def go(policy: str, code: int, *, by_user: bool = False, attempts: int = 0) -> bool:
        return should_restart(parse_restart(policy), code, stopped_by_user=by_user,
                              attempts=attempts)
    assert [go("no", 1), go("always", 0), go("unless-stopped", 0)] == [False, True, True]
    assert [go("on-failure", 0), go("on-failure", 137)] == [False, True]
    assert [go("on-failure:2", 1, attempts=1), go("on-failure:2", 1, attempts=2)] == [
        True, False]
    assert go("always", 1, by_user=True) is False
    assert from_deploy("any") == RestartPolicy("always")


def test_backoff_restarts_at_once_then_doubles_from_100ms_to_the_cap_and_resets() -> None:
    b = Backoff()
    delays = [b.next_delay(ran_for=0.5) for _ in range(12)]
    assert delays == pytest.approx([0, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30, 30])
    assert MAX_DELAY == 30
    # A long run starts afresh: at once, and the crash loop after it backs off again.
    assert [b.next_delay(ran_for=10.0), b.next_delay(ran_for=0.5)] == pytest.approx([0, 0.1])
    assert Backoff(fixed=2.0).next_delay(0) == 2.0


def test_probe_args_forms() -> None:
    assert probe_args(["CMD", "curl", "-f", "x"]) == ("curl", "-f", "x")
    assert probe_args(["CMD-SHELL", "curl -f x || exit 1"]) == (
        "/bin/sh", "-c", "curl -f x || exit 1")
    assert probe_args("pg_isready") == ("/bin/sh", "-c", "pg_isready")
    assert probe_args(["NONE"]) is None
    with pytest.raises(SpecError, match="not understood"):
        probe_args(["SHELL", "x"])


def test_health_transitions_follow_docker() -> None:
    check = HealthCheck(args=("x",), retries=2, start_period=10)
    s = HealthState()
    s = step(s, False, "no", check=check, elapsed=3)  # failures in the start period don't count
    assert (s.status, s.failing_streak) == ("starting", 0)
    s = step(s, True, "ok", check=check, elapsed=4)  # a pass ends the start period
    assert (s.status, s.in_start_period) == ("healthy", False)
    s = step(s, False, "no", check=check, elapsed=5)
    assert (s.status, s.failing_streak) == ("healthy", 1)
    s = step(s, False, "no", check=check, elapsed=6)
    assert (s.status, s.failing_streak) == ("unhealthy", 2)
    assert step(s, True, "ok", check=check, elapsed=7).status == "healthy"


def test_config_hash_counts_every_spec_field_but_the_excluded_ones() -> None:
    class Grown(ContainerSpec):  # a field added to ContainerSpec tomorrow
        new_knob: int = 0

    base = Grown(id="a", name="a", layers=("/l",), process=ProcessSpec(args=("sh",)))
    h = config_hash(base, image="sha256:1")
    assert config_hash(base, image="sha256:1") == h
    grown = config_hash(base.model_copy(update={"new_knob": 1}), image="sha256:1")
    assert grown.digest != h.digest
    assert grown.changed_fields(h.fields) == ("new_knob",)
    # A new field inside a split model counts too, and is named by its path.
    env = config_hash(base.model_copy(update={"process": ProcessSpec(args=("sh",),
                                                                      env=("A=1",))}),
                      image="sha256:1")
    assert env.changed_fields(h.fields) == ("process.env",)
    # The named exclusions never change it.
    assert set(EXCLUDED) == {"spec.id", "spec.name", "spec.layers"}
    same = base.model_copy(update={"id": "b", "name": "b", "layers": ("/other",)})
    assert config_hash(same, image="sha256:1") == h
    assert ConfigHash.parse_fields_label(h.fields_label()) == h.fields


def test_environment_order_is_not_configuration() -> None:
    spec = ContainerSpec(id="a", name="a", layers=(),
                         process=ProcessSpec(args=("sh",), env=("A=1", "B=2")))
    swapped = spec.model_copy(update={"process": ProcessSpec(args=("sh",), env=("B=2", "A=1"))})
    assert config_hash(spec, image="x") == config_hash(swapped, image="x")
