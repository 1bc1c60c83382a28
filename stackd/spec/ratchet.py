"""The stack model's validators, which a revision stored by an earlier stackd passes.

A rule added to the model refuses new input; it must not stop a stack that an earlier
stackd accepted, stored and runs — after an upgrade the daemon restores that revision
to keep healing it (Kubernetes ratchets new validation the same way: what is stored
stays readable, and only a change must pass). So every validator of `spec.model` is
made with these decorators: validated with `STORED` as its context, a validator that
refuses gives its input back unchanged instead. What was refused is found by
validating without it first (`spec.validate.restore_stack`), and told to the user.

Only refusals are ratcheted: a document that does not have the model's shape (a
wrong type, an unknown key) is refused either way.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Final, Literal

import pydantic
from pydantic import ValidationInfo

STORED: Final = {"stackd.stored": True}
"""The validation context of a stored revision."""

_Mode = Literal["before", "after", "wrap", "plain"]


def _stored(info: ValidationInfo) -> bool:
    context = info.context
    return isinstance(context, dict) and bool(context.get("stackd.stored"))


def _takes_info(fn: Callable[..., Any], given: int) -> bool:
    """Whether `fn` takes a ValidationInfo after its `given` positional arguments."""
    params = [p for p in inspect.signature(fn).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(params) > given


def _name_as(wrapper: Callable[..., Any], fn: Callable[..., Any]) -> Callable[..., Any]:
    # Not functools.wraps: its __wrapped__ would make pydantic read fn's signature,
    # and the wrapper always takes the info.
    wrapper.__name__ = fn.__name__
    wrapper.__qualname__ = fn.__qualname__
    wrapper.__doc__ = fn.__doc__
    wrapper.ratcheted = True  # type: ignore[attr-defined]
    return wrapper


def _of_class(fn: Any) -> Any:
    """Wraps `fn` (a classmethod taking cls and a value): in a stored revision, a
    refusal gives the value back."""
    func = fn.__func__
    with_info = _takes_info(func, 2)

    def ratcheted(cls: Any, value: Any, info: ValidationInfo) -> Any:
        try:
            return func(cls, value, info) if with_info else func(cls, value)
        except ValueError:
            if _stored(info):
                return value
            raise

    return classmethod(_name_as(ratcheted, func))


def _of_instance(fn: Callable[..., Any]) -> Any:
    """Wraps a model's after-validator `fn(self)`: in a stored revision, a refusal
    keeps the model as it is."""
    with_info = _takes_info(fn, 1)

    def ratcheted(self: Any, info: ValidationInfo) -> Any:
        try:
            return fn(self, info) if with_info else fn(self)
        except ValueError:
            if _stored(info):
                return self
            raise

    return _name_as(ratcheted, fn)


def field_validator(*fields: str, mode: _Mode = "after") -> Callable[[Any], Any]:
    """pydantic's `field_validator`, for a classmethod, ratcheted."""
    if mode in ("wrap", "plain"):
        raise TypeError(f"a {mode} validator is not ratcheted; use before or after")

    def decorate(fn: Any) -> Any:
        if not isinstance(fn, classmethod):
            raise TypeError(f"{fn!r}: put @classmethod under the validator")
        return pydantic.field_validator(*fields, mode=mode)(_of_class(fn))

    return decorate


def model_validator(*, mode: Literal["before", "after"]) -> Callable[[Any], Any]:
    """pydantic's `model_validator` (before: a classmethod; after: a method), ratcheted."""
    def decorate(fn: Any) -> Any:
        if mode == "before":
            if not isinstance(fn, classmethod):
                raise TypeError(f"{fn!r}: put @classmethod under the validator")
            return pydantic.model_validator(mode="before")(_of_class(fn))
        return pydantic.model_validator(mode="after")(_of_instance(fn))

    return decorate
