"""A revision an earlier stackd stored is read under the rules it was accepted with:
the model's refusals are ratcheted (spec/ratchet.py), its shape is not."""

from __future__ import annotations

import inspect
from typing import Any

import pydantic
import pytest

from stackd.errors import SpecError
from stackd.spec import model
from stackd.spec.model import Stack
from stackd.spec.validate import restore_stack

STORED_BY_AN_EARLIER_STACKD: dict[str, Any] = {
    "name": "up",
    "services": {"a": {
        "image": "busybox",
        "labels": {"io.stackd.note": "kept"},
        "healthcheck": {"test": ["CMD", "true"], "interval": "0.5ms"},
    }},
    "networks": {"n": {"driver_opts": {"com.docker.network.bridge.name": "br0"}}},
}


def test_a_stored_stack_with_what_is_refused_now_is_restored_as_stored() -> None:
    restored = restore_stack(STORED_BY_AN_EARLIER_STACKD)

    svc = restored.stack.services["a"]
    assert svc.labels == {"io.stackd.note": "kept"}
    assert svc.healthcheck is not None and svc.healthcheck.interval is not None
    assert svc.healthcheck.interval.total_seconds() == 0.0005
    assert restored.stack.networks["n"].driver_opts == {
        "com.docker.network.bridge.name": "br0"}
    # Each refusal as `up` says it, so the warning can tell what to change.
    assert restored.refused == (
        "service 'a': labels: label 'io.stackd.note': the io.stackd. prefix is stackd's "
        "own (it finds and keeps what it made by it); name the label otherwise",
        "service 'a': healthcheck.interval: healthcheck interval 500us is less than 1ms "
        "(give 0 for the default, or at least 1ms)",
        "network 'n': driver_opts: 'com.docker.network.bridge.name' is not supported "
        "yet (stackd's bridges take com.docker.network.driver.mtu, "
        "com.docker.network.bridge.enable_icc, com.docker.network.bridge.host_binding_ipv4)",
    )


def test_new_input_is_still_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match=r"io\.stackd\. prefix"):
        Stack.model_validate(STORED_BY_AN_EARLIER_STACKD)


def test_a_stack_this_stackd_takes_restores_with_nothing_refused() -> None:
    restored = restore_stack({"name": "up", "services": {"a": {"image": "busybox"}}})
    assert restored.refused == ()
    assert restored.stack.services["a"].image == "busybox"


@pytest.mark.parametrize(("doc", "said"), [
    ({"name": "up", "services": {"a": {"image": "busybox", "bogus": 1}}},
     "service 'a': unknown key 'bogus'"),
    ({"name": "up", "services": {"a": {"image": "busybox", "privileged": "often"}}},
     "service 'a': privileged: Input should be a valid boolean"),
])
def test_what_does_not_have_the_models_shape_is_refused_either_way(
        doc: dict[str, Any], said: str) -> None:
    with pytest.raises(SpecError) as caught:
        restore_stack(doc)
    assert str(caught.value).startswith(said)


def test_every_validator_of_the_model_is_ratcheted() -> None:
    """A rule added with pydantic's own decorators would stop, after an upgrade, every
    stored stack it refuses: the daemon could no longer keep or heal it."""
    plain = []
    for name, cls in vars(model).items():
        if inspect.isclass(cls) and issubclass(cls, pydantic.BaseModel):
            found = cls.__pydantic_decorators__
            for key, dec in [*found.field_validators.items(),
                             *found.model_validators.items()]:
                func = getattr(dec.func, "__func__", dec.func)
                if not getattr(func, "ratcheted", False):
                    plain.append(f"{name}.{key}")
    assert plain == []
