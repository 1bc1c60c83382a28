"""What a revision holds, on the daemon's side: captured from a stack loaded for `up`,
given back to every later reconcile of it, and compared (history, plan).

Capture: the resolved stack as JSON, the digest of every stack and env file the
loader read (their effect is in the resolved stack), and the content of every
config/secret `file:` and of every shell variable a config, secret or build arg is
taken from: those go to containers, so they are kept (as 0600 blobs, see
state/revisions.py) and handed to each reconcile instead of being read again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from stackd.errors import StackdError
from stackd.spec.model import Stack
from stackd.spec.validate import Restored, restore_stack
from stackd.state.revisions import FileInput, FileKind, Revision, sha256

ENV_PREFIX = "env:"


@dataclass(frozen=True)
class Captured:
    """A stack's revision inputs, before they are numbered and stored."""

    stack: str  # JSON
    files: tuple[FileInput, ...]
    contents: Mapping[str, bytes]  # sha256 → bytes, of the stored kinds


def stack_json(stack: Stack) -> str:
    return json.dumps(stack.to_compose(), sort_keys=True, separators=(",", ":"))


def with_scale(text: str, scale: Mapping[str, int]) -> str:
    """The resolved stack JSON with `--scale`'s replicas written into it (cluster mode:
    the published stack is all an agent runs)."""
    data = json.loads(text)
    for name, replicas in scale.items():
        svc = data.get("services", {}).get(name)
        if isinstance(svc, dict):
            svc.pop("scale", None)
            deploy = svc.setdefault("deploy", {})
            deploy["replicas"] = replicas
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def restored_from_json(text: str) -> Restored:
    """A revision's stack, read as the stackd that stored it accepted it."""
    return restore_stack(json.loads(text))


def stack_from_json(text: str) -> Stack:
    return restored_from_json(text).stack


def environ_names(stack: Stack) -> list[str]:
    """Shell variables a stack takes values from at reconcile time: the `environment:`
    of configs and secrets, and build args listed without a value."""
    names = {o.environment for objs in (stack.configs, stack.secrets) for o in objs.values()
             if o.environment is not None}
    for svc in stack.services.values():
        if svc.build is not None:
            names.update(k for k, v in svc.build.args.items() if v is None)
    return sorted(names)


def capture(stack: Stack, reads: Iterable[tuple[str, str, str]],
            file_contents: Mapping[str, bytes], environ: Mapping[str, str]) -> Captured:
    """Pure. `reads`: (path, kind, text) the loader reported; `file_contents`: the
    configs'/secrets' files as read now; `environ`: the caller's shell."""
    files: dict[str, FileInput] = {}
    contents: dict[str, bytes] = {}

    def add(path: str, kind: FileKind, data: bytes, keep: bool) -> None:
        digest = sha256(data)
        files[path] = FileInput(path, kind, digest)
        if keep:
            contents[digest] = data

    for path, kind, text in reads:
        add(path, "env" if kind == "env" else "stack", text.encode(), False)
    secret_files = {o.file for o in stack.secrets.values() if o.file is not None}
    for path, data in sorted(file_contents.items()):
        add(path, "secret" if path in secret_files else "config", data, True)
    for name in environ_names(stack):
        if name in environ:
            add(ENV_PREFIX + name, "environ", environ[name].encode(), True)
    return Captured(stack_json(stack), tuple(files[p] for p in sorted(files)), contents)


def given_files(revision: Revision, blob: Any) -> tuple[dict[str, bytes], dict[str, str]]:
    """(config/secret file path → bytes, shell variable → value) of a revision, from its
    blobs (`blob(digest) -> bytes`)."""
    files: dict[str, bytes] = {}
    environ: dict[str, str] = {}
    for f in revision.files:
        if f.kind == "environ":
            environ[f.path.removeprefix(ENV_PREFIX)] = blob(f.sha256).decode()
        elif f.stored:
            files[f.path] = blob(f.sha256)
    return files, environ


def service_fingerprints(stack: Stack, files: Iterable[FileInput],
                         images: Mapping[str, str]) -> dict[str, str]:
    """service → a digest of everything that makes its containers: its definition, the
    content of its configs and secrets, and the image digest it ran. Two revisions
    changed a service iff its fingerprints differ."""
    from stackd.spec.image_names import image_ref

    by_path = {f.path: f.sha256 for f in files}
    out = {}
    for name, svc in sorted(stack.services.items()):
        used: dict[str, str | None] = {}
        for kind, refs in (("configs", svc.configs), ("secrets", svc.secrets)):
            objs = stack.configs if kind == "configs" else stack.secrets
            for use in refs:
                obj = objs.get(use.source)
                if obj is None:
                    continue
                key = (obj.file if obj.file is not None else
                       ENV_PREFIX + obj.environment if obj.environment is not None else None)
                if key is not None:
                    used[f"{kind}/{use.source}"] = by_path.get(key)
        try:
            image = image_ref(stack, name, svc)
        except StackdError:
            image = ""
        body = {"service": svc.model_dump(mode="json", exclude_defaults=True),
                "files": used, "image": images.get(image, image)}
        out[name] = hashlib.sha256(json.dumps(body, sort_keys=True, default=str)
                                   .encode()).hexdigest()
    return out


def changed_services(before: Mapping[str, str], after: Mapping[str, str]) -> set[str]:
    return {s for s in set(before) | set(after) if before.get(s) != after.get(s)}


def changed_files(applied: Iterable[FileInput], now: Iterable[FileInput]) -> list[str]:
    """Lines naming each file whose content differs between a revision and now."""
    old = {f.path: f for f in applied}
    new = {f.path: f for f in now}
    lines = []
    for path in sorted(set(old) | set(new)):
        a, b = old.get(path), new.get(path)
        what = (b or a).kind  # type: ignore[union-attr]
        name = f"${path.removeprefix(ENV_PREFIX)}" if what == "environ" else path
        if a is None:
            lines.append(f"{what} {name}: read now, not by the applied revision")
        elif b is None:
            lines.append(f"{what} {name}: read by the applied revision, not now")
        elif a.sha256 != b.sha256:
            lines.append(f"{what} {name}: changed")
    return lines


def outcome_of(revision: Revision, current: int | None,
               outcome: tuple[int, str, str] | None) -> str:
    """done (converged once, or removed), failed: …, pending, or superseded (a newer
    revision came before this one converged)."""
    if revision.consumed:
        return "done"
    if revision.number != current:
        return "superseded"
    if outcome is not None and outcome[0] == revision.number and outcome[1] not in (
            "ok", "requeue"):
        return f"failed: {outcome[2]}"
    return "pending"


def revision_outcome(revision: Revision, next_cause: str | None, *, current: int | None,
                     outcome: tuple[int, str, str] | None, rolling: str = "") -> str:
    """`outcome_of`, and what a rolling update says first: `rolled back` (the revision
    after it is its rollback), `paused: …` or `updating` (`rolling`, from the kept
    rollouts; a paused revision is never consumed)."""
    if not revision.consumed and next_cause == "rollback":
        return "rolled back"
    if rolling and revision.number == current:
        return rolling
    return outcome_of(revision, current, outcome)


def history_rows(revisions: Iterable[Revision], *, current: int | None,
                 outcome: tuple[int, str, str] | None,
                 rolling: Mapping[int, str] | None = None) -> list[dict[str, Any]]:
    """One row per revision, oldest first: number, created, cause, outcome, its services
    and the ones it changed (against the revision before it; the oldest kept one
    against nothing, a `down` removes them all)."""
    rows: list[dict[str, Any]] = []
    before: dict[str, str] = {}
    kept = list(revisions)
    for i, r in enumerate(kept):
        prints = ({} if r.stack is None else
                  service_fingerprints(stack_from_json(r.stack), r.files, r.images))
        rows.append({"number": r.number, "created": r.created, "cause": r.cause,
                     "outcome": revision_outcome(
                         r, kept[i + 1].cause if i + 1 < len(kept) else None,
                         current=current, outcome=outcome,
                         rolling=(rolling or {}).get(r.number, "")),
                     "services": sorted(prints),
                     "changed": sorted(changed_services(before, prints))})
        before = prints
    return rows
