"""Unwrapping trio's exception groups at the package boundary.

A pull runs layers in a nursery; when one fails the caller should see the one
StackdError that says what went wrong, not an ExceptionGroup around it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from stackd.errors import StackdError


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


def _first_stackd_error(group: BaseExceptionGroup) -> StackdError | None:
    for exc in group.exceptions:
        if isinstance(exc, StackdError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _first_stackd_error(exc)
            if found is not None:
                return found
    return None


@asynccontextmanager
async def open_nursery() -> AsyncIterator[trio.Nursery]:
    try:
        async with trio.open_nursery() as nursery:
            yield nursery
    except BaseExceptionGroup as group:
        err = _first_stackd_error(group)
        if err is not None and all(isinstance(e, (StackdError, trio.Cancelled))
                                   for e in _leaves(group)):
            raise err from None
        raise
