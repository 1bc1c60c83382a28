"""The GitOps loop in the daemon: one task per source, polling at its interval (or at
once when asked: `gitops sync`, a webhook).

A sync: fetch the ref (git, in a worker thread) → if it names a new commit, verify
its signature (when asked), unpack its tree, load the stack from it (variables only
from the source's env file and the daemon's environment) and submit it to the engine
as a new revision of cause `gitops`, the commit recorded in the revision's own
transaction. A commit whose stack cannot be loaded changes nothing on the host. If
the commit is already applied, look for drift instead: the stack removed (`down`),
replaced by another revision (`up` with another file, `scale`), containers held by
`stop`/`rm`, or a plan that is not empty; undo it by applying the commit again (or
only report it: --no-self-heal). A commit whose rollout failed its health checks is
rolled back by the engine (failure_action rollback); the source marks it Failed and
leaves the rollback in place until a newer commit arrives.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from stackd.daemon.events import Event
from stackd.daemon.models import ApplyOptions, ApplyRequest, StackSource
from stackd.errors import ConflictError, NotFoundError, StackdError, UsageError
from stackd.filemodes import private_dir
from stackd.gitops import git
from stackd.gitops.masking import mask_text
from stackd.gitops.models import SourceSpec
from stackd.gitops.status import Facts, derive
from stackd.gitops.store import Source, SourceStore
from stackd.state.intents import IntentLog
from stackd.trees import remove_tree

if TYPE_CHECKING:
    from fastapi import FastAPI
    from prometheus_client import Counter, Gauge

    from stackd.daemon.engine import Engine

log = logging.getLogger("stackd.gitops")
GITOPS_DIR = "gitops"
TREES = "trees"  # under gitops/NAME: one directory per unpacked commit
OUTCOME_EVERY = 1.0


@dataclass
class _Live:
    """What a source's task knows beyond the database (lost on restart, found again
    by the next sync)."""

    head: git.Commit | None = None
    error: str = ""
    drift: str = ""
    last_sync: float = 0.0
    last_result: str = ""
    wake: trio.Event = field(default_factory=trio.Event)
    lock: trio.Lock = field(default_factory=trio.Lock)
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)


class GitOps:
    """An Extension of the daemon (daemon/extensions.py)."""

    def __init__(self, *, webhook_listen: str | None = None,
                 webhook_secret_file: str | None = None) -> None:
        self.webhook_listen = webhook_listen
        self.webhook_secret_file = webhook_secret_file
        self._engine: Engine | None = None
        self._store: SourceStore | None = None
        self._live: dict[str, _Live] = {}
        self._nursery: trio.Nursery | None = None
        self.webhook_port: int | None = None

    # -- wiring ----------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        assert self._engine is not None, "GitOps.run starts first"
        return self._engine

    @property
    def store(self) -> SourceStore:
        assert self._store is not None, "GitOps.run starts first"
        return self._store

    async def run(self, engine: Engine, *,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._engine = engine
        engine.db.ensure_schemas()
        self._store = SourceStore(engine.db)
        self._metrics(engine)
        applied = [s.applied.author_time for s in self.store.all() if s.applied]
        if applied:  # what the daemon before this one last applied
            self.last_commit_time.set(max(applied))
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for source in self.store.all():
                self._start(source.name)
            if self.webhook_listen:
                from stackd.gitops.webhook import serve_webhook

                try:
                    self.webhook_port = await nursery.start(serve_webhook, self,
                                                            self.webhook_listen,
                                                            self.webhook_secret_file)
                except (OSError, StackdError) as exc:
                    # The daemon keeps its stacks (and the sources poll) without it.
                    why = exc.strerror if isinstance(exc, OSError) else str(exc)
                    log.error("webhook listener not started", extra={"error": why})
                    engine.bus.publish(Event(
                        type="error", message=f"gitops webhook listener on "
                        f"{self.webhook_listen} not started: {why}",
                        attrs={"fault": "webhook"}))
            task_status.started()
            await trio.sleep_forever()  # sources added later start in this nursery

    def _metrics(self, engine: Engine) -> None:
        from prometheus_client import Counter, Gauge

        registry = engine.metrics.registry
        self.syncs: Counter = Counter("stackd_gitops_sync", "GitOps syncs by result",
                                      ["result"], registry=registry)
        self.last_commit_time: Gauge = Gauge(
            "stackd_gitops_last_synced_commit_timestamp_seconds",
            "Author time of the newest commit a GitOps sync applied", registry=registry)
        self.webhook_refused: Counter = Counter(
            "stackd_gitops_webhook_refused", "Webhook requests refused (bad signature)",
            registry=registry)

    def routes(self, app: FastAPI, engine: Engine) -> None:
        from stackd.gitops.routes import add_routes

        add_routes(app, self)

    def _start(self, name: str) -> None:
        assert self._nursery is not None
        live = self._live.setdefault(name, _Live())
        self._nursery.start_soon(self._poll, name, live)

    def _dir(self, name: str) -> Path:
        root = private_dir(self.engine.roots.state / GITOPS_DIR)
        return private_dir(root / name)

    # -- the API's operations ------------------------------------------------------------

    async def add(self, spec: SourceSpec) -> dict[str, Any]:
        if self.engine.store.get(spec.name) is not None and not any(
                s.name == spec.name for s in self.store.all()):
            # A stack someone applied by hand is not taken over silently.
            raise ConflictError(f"a stack named {spec.name!r} exists already (not from "
                                "this gitops source)", hint="`stackd down` it first, or "
                                "give the source another name")
        self.store.add(spec)
        self._emit(spec.name, "added", f"source {spec.name} added: "
                   f"{mask_text(spec.repo)} {spec.ref[0]} {spec.ref[1]}")
        self._start(spec.name)
        return await self.status(spec.name)

    async def remove(self, name: str, keep_stack: bool) -> None:
        self.store.remove(name)
        live = self._live.pop(name, None)
        if live is not None:
            live.scope.cancel()
        if not keep_stack and self.engine.store.get(name) is not None:
            from stackd.daemon.models import RemoveOptions

            # Wait for the down: the CLI says the stack was taken down, and a `ps`
            # right after must not find its containers still going.
            gen = await self.engine.submit_removal(name, RemoveOptions())
            outcome = await self.engine.wait_generation(name, gen)
            if outcome.status in ("retry", "terminal"):
                raise ConflictError(f"source {name} removed, but taking its stack down "
                                    f"failed: {outcome.error}",
                                    hint=f"stackd -p {name} down")
        path = self.engine.roots.state / GITOPS_DIR / name

        await trio.to_thread.run_sync(functools.partial(remove_tree, path,
                                                        ignore_errors=True))
        self._emit(name, "removed", f"source {name} removed"
                   + (" (its stack kept)" if keep_stack else ""))

    def suspend(self, name: str, suspended: bool) -> None:
        self.store.set_suspended(name, suspended)
        self._emit(name, "suspended" if suspended else "resumed",
                   f"source {name} {'suspended' if suspended else 'resumed'}")
        if not suspended:
            self.wake(name)

    def note_refused(self, name: str) -> None:
        """A webhook for `name` whose signature did not check: counted and said."""
        if self._engine is not None:
            self.engine.bus.publish(Event(
                type="gitops", project=name if name in self._live else None,
                message=f"webhook for {name} refused: bad signature or token",
                attrs={"source": name, "what": "webhook-refused"}))

    def wake(self, name: str) -> bool:
        live = self._live.get(name)
        if live is None:
            return False
        live.wake.set()
        return True

    async def sync_now(self, name: str) -> dict[str, Any]:
        self.store.get(name)  # NotFound
        live = self._live.setdefault(name, _Live())
        await self._sync(name, live, forced=True)
        return await self.status(name)

    async def statuses(self) -> list[dict[str, Any]]:
        return [await self.status(s.name) for s in self.store.all()]

    async def status(self, name: str) -> dict[str, Any]:
        source = self.store.get(name)
        live = self._live.get(name) or _Live()
        key = self.engine.controller.key_status(name)
        outcome = key.outcome
        converged = outcome is not None and outcome.generation >= source.applied_gen > 0
        reconciled = outcome.status if converged and outcome is not None else ""
        phase = derive(Facts(
            head=live.head.sha if live.head else "", applied=source.applied.sha
            if source.applied else "", failed=source.failed_sha, error=live.error,
            reconciled=reconciled,
            converged=converged, drift=live.drift, self_heal=source.spec.self_heal,
            suspended=source.suspended))
        spec = source.spec
        kind, ref = spec.ref
        return {
            "name": name, "repo": mask_text(spec.repo), "ref": f"{kind} {ref}",
            "path": spec.path, "files": spec.files, "interval": spec.interval,
            "prune": spec.prune, "prune_volumes": spec.prune_volumes,
            "self_heal": spec.self_heal, "suspended": source.suspended, "status": phase,
            "head": _commit(live.head), "applied": _commit(source.applied),
            "revision": source.applied_gen, "failed_commit": source.failed_sha,
            "error": live.error, "drift": live.drift,
            "reconcile_error": outcome.error if converged and outcome is not None else "",
            "last_sync": live.last_sync, "last_result": live.last_result,
            "revisions": [{"number": number, "commit": _commit(commit)}
                          for number, commit in self.store.commits(name).items()]}

    async def diff(self, name: str) -> dict[str, Any]:
        """What the next sync would do, as `plan` prints it: fetch, unpack, plan."""
        source = self.store.get(name)
        live = self._live.setdefault(name, _Live())
        async with live.lock:  # one git at a time in the source's cache
            commit = await self._fetch(source)
            request = await self._unpack(source, commit)
        try:
            project, actions, revision = await self.engine.plan(request)
            loaded = await self.engine.world.load(request.source)
        except StackdError as exc:
            raise type(exc)(self._relative(name, exc)) from None
        applied = (self.engine.revisions.get(name, source.applied_gen)
                   if source.applied_gen else None)
        if applied is not None and revision is not None:
            # Each commit has its own tree: compare the files by their path in the
            # repository, not by where they were unpacked.
            from stackd.daemon.revision import changed_files
            from stackd.state.revisions import FileInput

            base = self.engine.roots.state / GITOPS_DIR / name

            def rel(files: Iterable[FileInput]) -> list[FileInput]:
                return [FileInput(relative_to_trees(f.path, base), f.kind, f.sha256)
                        for f in files]

            revision = {"number": applied.number, "changes": [
                *changed_files(rel(applied.files), rel(loaded.captured.files)),
                *(line for line in revision["changes"]  # type: ignore[attr-defined]
                  if str(line).startswith("image "))]}
        return {"project": project, "commit": _commit(commit), "actions": actions,
                "revision": revision, "applied": _commit(source.applied)}

    # -- the loop ----------------------------------------------------------------------

    async def _poll(self, name: str, live: _Live) -> None:
        with live.scope:
            while True:
                try:
                    source = self.store.get(name)
                except NotFoundError:
                    return
                if not source.suspended:
                    await self._sync(name, live, forced=False)
                # Between fetches, learn every second how the applied commit's rollout
                # went (good, or rolled back): that is database reads only.
                deadline = trio.current_time() + source.spec.interval
                while not live.wake.is_set() and trio.current_time() < deadline:
                    with trio.move_on_after(min(OUTCOME_EVERY,
                                                deadline - trio.current_time())):
                        await live.wake.wait()
                    try:
                        await self._note_outcome(self.store.get(name))
                    except NotFoundError:
                        return
                live.wake = trio.Event()

    async def _sync(self, name: str, live: _Live, *, forced: bool) -> None:
        async with live.lock:
            source = self.store.get(name)
            if source.suspended and not forced:
                return
            try:
                result = await self._sync_once(source, live)
                live.error = ""
            except StackdError as exc:
                result = "error"
                error = self._relative(name, exc)
                if error != live.error:  # a broken commit is said once, not every interval
                    self._emit(name, "error", f"sync failed: {error}", result="error")
                    log.warning("gitops sync failed", extra={"project": name,
                                                            "error": error})
                live.error = error
            live.last_sync = time.time()
            live.last_result = result
            self.syncs.labels(result).inc()

    async def _sync_once(self, source: Source, live: _Live) -> str:
        name = source.name
        await self._note_outcome(source)
        source = self.store.get(name)
        head = await self._fetch(source)
        live.head = head
        if head.sha == source.failed_sha:
            return "failed"  # stays Failed, the rollback in place, until a newer commit
        if source.applied is not None and head.sha == source.applied.sha:
            return await self._check_drift(source, live)
        if source.spec.verify_signatures:
            await trio.to_thread.run_sync(functools.partial(
                git.verify, self._dir(name) / "repo.git", head.sha,
                keyring=source.spec.keyring, allowed_signers=source.spec.allowed_signers))
        request = await self._unpack(source, head)
        _, gen = await self.engine.submit(
            request, cause="gitops",
            also=lambda c, number: SourceStore.record_applied(c, name, number, head))
        live.drift = ""
        if source.failed_sha:
            self.store.clear_failed(name)
        # The trees of the commit now applied and of the last good one (a rollback's)
        # stay; bind mounts of older ones belong to containers this apply replaces.
        await self._collect_trees(name, {head.sha} | (
            {source.good.sha} if source.good else set()) | (
            {source.applied.sha} if source.applied else set()))
        self.last_commit_time.set(head.author_time)
        self._emit(name, "applied", f"commit {head.sha[:12]} ({head.message}) applied as "
                   f"revision {gen}", result="applied", commit=head.sha,
                   generation=str(gen))
        return "applied"

    async def _note_outcome(self, source: Source) -> None:
        """Learn from the controller how the applied commit's revision went: converged
        (the commit is good), or rolled back after failing its health checks."""
        name = source.name
        if source.applied is None:
            return
        desired = self.engine.store.get(name)
        outcome = self.engine.controller.key_status(name).outcome
        if (desired is not None and desired.generation == source.applied_gen
                and outcome is not None and outcome.generation == source.applied_gen
                and outcome.status in ("ok", "requeue")
                and source.good_gen != source.applied_gen):
            self.store.mark_good(name, source.applied, source.applied_gen)
            if source.spec.prune_volumes:
                await self._prune_volumes(name, source.applied_gen)
            return
        if desired is None or desired.generation <= source.applied_gen:
            return
        revision = self.engine.revisions.get(name, desired.generation)
        if (revision is not None and revision.cause == "rollback"
                and source.good_gen != source.applied_gen):
            # The engine rolled our commit back (failure_action rollback): the revision
            # it made holds the last good commit's stack.
            self.store.mark_rolled_back(name, source.applied.sha, source.good,
                                        desired.generation)
            self._emit(name, "failed", f"commit {source.applied.sha[:12]} failed its "
                       "rollout and was rolled back"
                       + (f" to commit {source.good.sha[:12]}" if source.good else ""),
                       result="failed", commit=source.applied.sha)

    async def _prune_volumes(self, name: str, gen: int) -> None:
        """--prune-volumes, once the commit's revision converged (its containers gone
        with --prune): the volumes earlier revisions declared and this one does not.
        One still mounted by a live process is kept (the kernel is asked)."""
        from stackd.daemon.revision import stack_from_json
        from stackd.gitops.prune import dropped_volumes
        from stackd.state.volumes import VolumeStore

        revisions = [r for r in self.engine.revisions.list(name) if r.stack is not None]
        current = next((r for r in revisions if r.number == gen), None)
        if current is None or current.stack is None:
            return
        earlier = [stack_from_json(r.stack) for r in revisions
                   if r.number < gen and r.stack is not None]
        volumes = VolumeStore(self.engine.db, self.engine.roots.state)
        known = set(await volumes.volumes(name))
        for volume in dropped_volumes(earlier, stack_from_json(current.stack)):
            if volume not in known:
                continue
            try:
                await volumes.remove_volume(volume)
            except StackdError as exc:
                self._emit(name, "prune", f"volume {volume} kept: {exc.message}",
                           volume=volume, result="kept")
                continue
            self._emit(name, "prune", f"volume {volume} removed: no longer in the "
                       "repository", volume=volume, result="removed")

    async def _check_drift(self, source: Source, live: _Live) -> str:
        name = source.name
        found = await self._drift(source)
        if not found:
            if live.drift:
                self._emit(name, "drift-gone", "no drift left", result="synced")
            live.drift = ""
            return "unchanged"
        live.drift = found
        healing = source.spec.self_heal
        self.engine.bus.publish(Event(
            type="drift", project=name, message="drift from commit "
            f"{source.applied.sha[:12] if source.applied else ''}: {found}"
            + ("; undoing it" if healing else "; reported only (--no-self-heal)"),
            attrs={"source": name, "what": found, "self_heal": str(healing).lower()}))
        if not healing:
            return "drift"
        assert source.applied is not None
        request = await self._unpack(source, source.applied)
        commit = source.applied
        await self.engine.submit(
            request, cause="gitops",
            also=lambda c, number: SourceStore.record_applied(c, name, number, commit))
        return "healed"

    async def _drift(self, source: Source) -> str:
        """What differs on the host from the applied commit ("" if nothing)."""
        name = source.name
        desired = self.engine.store.get(name)
        if desired is None or desired.phase == "removing":
            return "the stack was removed (down)"
        if desired.generation != source.applied_gen:
            revision = self.engine.revisions.get(name, desired.generation)
            cause = revision.cause if revision is not None else "?"
            return (f"revision {desired.generation} (cause {cause}) replaced the commit's "
                    f"revision {source.applied_gen}")
        held = IntentLog(self.engine.db).held(name)
        if held:
            return "containers stopped or removed by hand: " + ", ".join(held)
        return ""

    # -- the pieces ------------------------------------------------------------------------

    async def _fetch(self, source: Source) -> git.Commit:
        spec = source.spec
        kind, ref = spec.ref
        creds = await trio.to_thread.run_sync(git.read_token, spec.token_file)
        cache = self._dir(source.name) / "repo.git"
        return await trio.to_thread.run_sync(functools.partial(
            git.fetch, spec.repo, kind, ref, cache, creds))

    async def _unpack(self, source: Source, commit: git.Commit) -> ApplyRequest:
        """The apply request of `commit`, its tree unpacked at trees/<sha>: one
        directory per commit, never rewritten, so a bind mount of a repository path
        (`./conf:/etc/app`) is a new path — a recreated container — when the commit
        changes, and a running container's mount is never emptied under it."""
        spec = source.spec
        trees = private_dir(self._dir(source.name) / TREES)
        tree = trees / commit.sha
        if not tree.is_dir():
            await trio.to_thread.run_sync(git.export, self._dir(source.name) / "repo.git",
                                          commit.sha, tree)
        top = tree / spec.path if spec.path != "." else tree
        if not top.is_dir():
            raise UsageError(f"--path {spec.path} is not a directory at commit "
                             f"{commit.sha[:12]}", hint="give the stack's directory "
                             "inside the repository")
        return ApplyRequest(
            source=StackSource(
                files=[str(top / f) for f in spec.files] or None, cwd=str(top),
                project_name=source.name, project_directory=str(top),
                env_files=[spec.env_file] if spec.env_file else None,
                profiles=spec.profiles or None,
                # the daemon's environment, never a user's shell
                environ=dict(os.environ)),
            options=ApplyOptions(remove_orphans=spec.prune))

    async def _collect_trees(self, name: str, keep: set[str]) -> None:
        """Remove the trees of commits no longer applied, good or newest."""

        trees = self._dir(name) / TREES

        def collect() -> None:
            for entry in os.listdir(trees):
                if entry not in keep:
                    remove_tree(trees / entry, ignore_errors=True)

        try:
            await trio.to_thread.run_sync(collect)
        except FileNotFoundError:
            pass

    def _relative(self, name: str, exc: StackdError) -> str:
        """An error's text with the unpacked trees' paths made repository-relative, so
        `compose.yaml:3:5` names the file at that commit."""
        return relative_to_trees(str(exc), self.engine.roots.state / GITOPS_DIR / name)

    def _emit(self, name: str, what: str, message: str, **attrs: str) -> None:
        self.engine.bus.publish(Event(type="gitops", project=name, message=message,
                                      attrs={"source": name, "what": what, **attrs}))


def relative_to_trees(text: str, source_dir: Path) -> str:
    """`text` with `<source_dir>/trees/<sha>/` removed from every path, credentials
    masked (pure)."""
    prefix = re.escape(str(source_dir / TREES)) + r"/[0-9a-f]{40,64}/?"
    return mask_text(re.sub(prefix, "", text))


def _commit(c: git.Commit | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {"sha": c.sha, "author_time": c.author_time, "message": c.message}
