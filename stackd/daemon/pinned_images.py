"""The image store as one revision sees it: each image ref at the digest the revision
first resolved it to.

The first reconcile of a revision resolves its refs as the pull policy says (pull,
build, or what the store holds) and records each ref's manifest digest. Every later
reconcile of the same revision gets exactly those images, by digest: a ref re-tagged
or re-pulled meanwhile, or a `pull_policy: always`/`build`, changes nothing until the
next `up` makes a new revision.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

import trio

from stackd.errors import NotFoundError, StackdError

# (ref, digest) → the digest that holds for the revision (the first one recorded)
Pin = Callable[[str, str], str]


class PinnedImages:
    def __init__(self, store: Any, pins: dict[str, str], pin: Pin) -> None:
        self._store = store
        self._pins = pins  # shared with the loaded stack: later reconciles see new pins
        self._pin = pin

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def ensure(self, ref: str, pull_policy: Any = "missing", *,
                     platform: Any = None, progress: Any = None) -> Any:
        if ref in self._pins:
            return await self._pinned(ref)  # the digest names one platform already
        image = await self._store.ensure(ref, pull_policy, progress, platform)
        return await self._record(ref, image)

    async def build(self, context_dir: str, dockerfile: str = "Dockerfile",
                    tag: str | builtins.list[str] | None = None, *args: Any,
                    **kwargs: Any) -> Any:
        ref = tag if isinstance(tag, str) else tag[0] if tag else None
        if ref is not None and ref in self._pins:
            return await self._pinned(ref)
        image = await self._store.build(context_dir, dockerfile, tag, *args, **kwargs)
        return image if ref is None else await self._record(ref, image)

    async def _record(self, ref: str, image: Any) -> Any:
        held = self._pin(ref, image.digest)
        self._pins[ref] = held
        return image if held == image.digest else await self._pinned(ref)

    async def _pinned(self, ref: str) -> Any:
        digest = self._pins[ref]
        try:
            return await trio.to_thread.run_sync(self._store.image, digest)
        except StackdError:
            raise NotFoundError(
                f"image {ref} as this stack's applied revision has it ({digest}) is no "
                "longer in the image store",
                hint="`stackd up` applies the stack again with the image its ref names "
                "now") from None
