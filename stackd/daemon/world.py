"""What the daemon needs from the rest of stackd, as one narrow interface.

The daemon hosts the loop and serves the API; everything that touches the host goes
through a `World`: loading stack files (spec), reconciling and planning (reconciler),
listing and operating containers (runtime), networks (netbridge), images (images).
`stackd/daemon/adapters.py` builds the real one from those packages; a piece that is
missing makes only the operations needing it fail, with an UnavailableError that says so.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol

import trio

from stackd.daemon.events import Event
from stackd.daemon.models import ApplyOptions, ExecRequest, ExecResult, RemoveOptions, StackSource
from stackd.reconciler.asks import Ask
from stackd.reconciler.rolling import Rollout

if TYPE_CHECKING:
    from stackd.daemon.revision import Captured
    from stackd.daemon.single import RunRequest
    from stackd.spec.model import Stack
    from stackd.state.revisions import Revision

Emit = Callable[[Event], object]


class LoadedStack(Protocol):
    """A stack after `spec.load` or restored from a revision: the daemon needs its name."""

    @property
    def project(self) -> str: ...

    @property
    def stack(self) -> Stack:
        """The resolved stack itself."""

    @property
    def services(self) -> Collection[str]:
        """Its services' names."""

    @property
    def refused(self) -> tuple[str, ...]:
        """What in a restored revision this stackd refuses in new input (a rule newer
        than the revision: spec/ratchet.py), each as `up` would say it."""


class LoadedFiles(LoadedStack, Protocol):
    """A stack loaded from its files now, with what a revision of it records."""

    @property
    def disabled(self) -> Collection[str]:
        """The services of its files that their profiles left out."""

    @property
    def captured(self) -> Captured: ...


class World(Protocol):
    async def watch(self, emit: Emit, *, task_status: trio.TaskStatus[None]) -> None:
        """Run until cancelled, emitting events for what happens on the host (exits, OOMs,
        health changes, deleted devices). Each event names its project so the daemon can
        enqueue that stack."""

    async def load(self, source: StackSource) -> LoadedFiles:
        """The stack as its files are now, with what a revision of it would record."""

    async def restore(self, revision: Revision, files: Mapping[str, bytes],
                      environ: Mapping[str, str], pin: Callable[[str, str], str]
                      ) -> LoadedStack:
        """The stack of an applied revision (state.revisions.Revision): reconciled with
        `files` (its configs'/secrets' contents), `environ` (the shell variables it
        takes values from) and its image pins; `pin(ref, digest)` records a pin."""

    async def image_digest(self, ref: str) -> str | None:
        """The manifest digest the image store holds for `ref` now, None if none."""

    async def reconcile(self, stack: LoadedStack, options: ApplyOptions,
                        emit: Emit, ask: Ask | None = None,
                        rollouts: Mapping[str, Rollout] | None = None,
                        keep: Callable[[Mapping[str, Rollout]], None] | None = None,
                        ) -> float | None:
        """Make the host match `stack` (first carrying out a user's lifecycle verb, if
        asked); return seconds after which to look again, or None. A rolling update
        runs its next batch, from `rollouts` (what earlier passes did); its state after
        goes to `keep`, also when the pass then fails. Only the stack's reconcile calls
        this: it is the one writer of the stack's containers."""

    async def heal(self, project: str) -> None:
        """Restart now what the restart policy restarts (and kill what must go), from
        what the watchers saw, without observing or planning the stack: the reconcile
        that calls it converges the whole stack right after. Only the stack's
        reconcile calls this, for a revision it already reached."""

    async def plan(self, stack: LoadedStack, options: ApplyOptions, *, as_up: bool = False
                   ) -> list[dict[str, Any]]:
        """What `reconcile` would do (`up` itself, with `as_up`), changing nothing:
        [{"line": …, …}] in order."""

    async def teardown(self, project: str, options: RemoveOptions, emit: Emit,
                       stack: LoadedStack | None = None) -> None:
        """Remove every container (and network; volumes when asked) labelled with
        project; dependents first when `stack` (its last applied stack) is given."""

    async def containers(self, project: str | None, all: bool) -> list[dict[str, Any]]: ...

    async def projects(self) -> list[str]:
        """Projects that have containers on the host (by label), desired or not."""

    async def networks(self) -> list[dict[str, Any]]: ...

    async def volumes(self) -> list[dict[str, Any]]: ...

    async def images(self) -> list[dict[str, Any]]: ...

    def logs(self, container: str, *, follow: bool, tail: int | None,
             timestamps: bool, across_restarts: bool = False
             ) -> AsyncIterator[dict[str, Any]]: ...

    async def exec(self, container: str, request: ExecRequest) -> ExecResult: ...

    async def stats(self, container: str) -> dict[str, Any]: ...

    async def top(self, container: str) -> dict[str, Any]:
        """{"container", "id", "titles", "processes"}: `ps -ef` rows, as Docker's top."""

    def run(self, request: RunRequest) -> AsyncIterator[dict[str, Any]]:
        """`stackd run`: {"started"}, then output lines, then {"exit"} (see single.py)."""

    def build_network(self, container_id: str) -> AbstractAsyncContextManager[Any]:
        """A build step's container on the build network until the block ends
        (daemon/buildnet.py): its `images.build.network.Joined`."""

    async def signal(self, container: str, action: str, signal: str | None,
                     timeout: int | None = None) -> None:
        """start, stop, restart (SIGKILL after `timeout` s if given), kill (with signal)
        or remove one container of no stack (`stackd run IMAGE`); a stack's containers
        change only in its reconcile."""
