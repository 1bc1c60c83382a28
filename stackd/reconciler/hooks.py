"""Lifecycle hooks (`post_start`, `pre_stop`) as compose runs them: each an exec in the
container, with its own user, working directory and environment over the container's.

The hooks travel with the container as one label (`hooks_label` at translate time),
so a stop — by `down`, `stop`, a recreate, from any daemon — finds the ones the
container was made with. A failing `post_start` fails the start (compose's
"post_start hook exited with status N"); a `pre_stop` runs before the stop signal, its
failure or hang (bounded by the stop grace period) does not keep the container from
stopping, as compose's does not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import trio

from stackd.errors import HookFailedError, StackdError
from stackd.spec.model import Hook, Service

LABEL_HOOKS = "io.stackd.hooks"


def hooks_label(svc: Service) -> dict[str, str]:
    """The label that carries the service's hooks ({} without any). Pure."""
    if not svc.post_start and not svc.pre_stop:
        return {}
    return {LABEL_HOOKS: json.dumps({"post_start": [_wire(h) for h in svc.post_start],
                                     "pre_stop": [_wire(h) for h in svc.pre_stop]},
                                    sort_keys=True, separators=(",", ":"))}


def _wire(h: Hook) -> dict[str, Any]:
    env = [f"{k}={v}" for k, v in sorted(h.environment.items()) if v is not None]
    return {"command": list(h.command), "user": h.user, "working_dir": h.working_dir,
            "env": env}


def hooks_of(labels: Mapping[str, str], which: str) -> list[dict[str, Any]]:
    """The hooks of kind `which` a container's labels carry. Pure; a malformed label
    (not ours to trust) gives none."""
    try:
        got = json.loads(labels.get(LABEL_HOOKS) or "{}").get(which, [])
        return [h for h in got if isinstance(h, dict) and isinstance(h.get("command"), list)]
    except (ValueError, AttributeError):
        return []


async def _run(runtime: Any, container_id: str, hook: Mapping[str, Any]) -> tuple[int, str]:
    r = await runtime.exec(container_id, [str(a) for a in hook["command"]],
                           env=list(hook.get("env") or []),
                           cwd=hook.get("working_dir") or None, user=hook.get("user") or None)
    stderr = r.stderr.decode(errors="replace") if isinstance(r.stderr, bytes) else str(
        r.stderr or "")
    return r.exit_code, stderr.strip()


async def post_start(runtime: Any, container_id: str, name: str,
                     labels: Mapping[str, str]) -> None:
    for hook in hooks_of(labels, "post_start"):
        try:
            code, stderr = await _run(runtime, container_id, hook)
        except StackdError as exc:
            raise HookFailedError(f"container {name}: post_start hook "
                                  f"{_shown(hook['command'])} could not run: {exc.message}",
                                  hint="the container is running; fix the hook and "
                                       "`stackd up` again") from None
        if code != 0:
            raise HookFailedError(
                f"container {name}: post_start hook {_shown(hook['command'])} exited with "
                f"status {code}" + (f": {stderr.splitlines()[-1]}" if stderr else ""),
                hint="the container is running; fix the hook and `stackd up` again")


async def pre_stop(runtime: Any, container_id: str, labels: Mapping[str, str],
                   grace: float) -> None:
    hooks = hooks_of(labels, "pre_stop")
    if not hooks:
        return
    with trio.move_on_after(grace):
        for hook in hooks:
            try:
                await _run(runtime, container_id, hook)
            except StackdError:
                continue  # gone meanwhile, or the command is missing: stop anyway


def _shown(command: Sequence[str]) -> str:
    return repr(" ".join(command))
