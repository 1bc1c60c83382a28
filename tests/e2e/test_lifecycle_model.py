"""Compose's lifecycle verbs in random order, each followed by `ps`, against a model
of what Compose leaves: `up [S…]` runs the named (or all) services and what they
depend on (a paused one stays paused), `create` makes the missing ones, `stop`/`kill`
stop them, `start` runs those that have a container and what they depend on,
`restart` those named (each with a new process; a paused one too), `pause`/`unpause`
freeze and thaw the running ones, `rm`/`rm -f` remove the stopped ones and `rm -s`
all (until an `up`), `down` removes all. `b` depends on `a`.

It found, on a stack of three services: `stop`, `start` and `restart` doing nothing
for a service the last `up` did not name, `start`/`restart` making again a
container `rm` had removed (Compose's act only on containers that exist), and
`start b` leaving `a`, which b depends on, stopped."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import CLI, DEMO_IMAGE, stack_dir
from support.psrows import ps_rows

from stackd.roots import Roots

pytestmark = [pytest.mark.root, pytest.mark.slow]

SERVICES = ("a", "b", "c")
STACK = "name: model\nservices:\n" + "".join(
    f"  {s}:\n    image: {DEMO_IMAGE}\n    pull_policy: never\n"
    f"    command: [sleep, '200{i}']\n    stop_signal: SIGKILL\n"
    + ("    depends_on: [a]\n" if s == "b" else "")
    for i, s in enumerate(SERVICES))
NEEDS = {"b": ["a"]}


@pytest.fixture
def stack(no_leaks: Roots, demo_image: str, tmp_path: Path) -> Iterator[CLI]:
    with stack_dir(no_leaks, tmp_path, "model", STACK) as cli:
        yield cli


def observed(cli: CLI) -> dict[str, tuple[str, int | None]]:
    out = {}
    for r in ps_rows(cli("ps", "-a", "--format", "json").stdout):
        state = "paused" if r["state"] == "running" and r.get("paused") else r["state"]
        out[r["service"]] = (state if state in ("running", "paused", "created")
                             else "exited", r.get("pid"))
    return out


def apply(model: dict[str, str], verb: str, named: list[str]) -> None:
    """What Compose leaves after `verb` of `named` (all services when none)."""
    targets = named or list(SERVICES)
    with_deps = sorted({*targets, *(d for t in targets for d in NEEDS.get(t, []))})
    for s in with_deps if verb in ("up", "create", "start") else targets:
        state = model.get(s)
        if verb == "up" and state != "paused":
            model[s] = "running"
        elif verb == "create" and state is None:
            model[s] = "created"
        elif verb in ("stop", "kill") and state in ("running", "paused"):
            model[s] = "exited"
        elif ((verb == "start" and state in ("exited", "created"))
              or (verb == "restart" and state is not None)):
            model[s] = "running"
        elif verb == "pause" and state == "running":
            model[s] = "paused"
        elif verb == "unpause" and state == "paused":
            model[s] = "running"
        elif verb in ("rm", "rm -f") and state in ("exited", "created"):
            del model[s]
        elif verb in ("rm -s", "down"):
            model.pop(s, None)


@pytest.mark.parametrize("seed", [11, 23])
def test_random_verbs_leave_what_compose_would(stack: CLI, seed: int) -> None:
    rng = random.Random(seed)
    model: dict[str, str] = {}
    stack("down")
    done: list[str] = []
    for _ in range(30):
        verb = rng.choice(["up", "up", "create", "stop", "start", "restart", "kill", "rm",
                           "rm -f", "rm -s", "pause", "unpause", "down"])
        named = rng.sample(SERVICES, rng.randint(0, 2)) if verb != "down" else []
        before = observed(stack)
        argv = {"up": ["up", "-d"]}.get(verb, verb.split())
        # What finds nothing to act on is refused or said so, as Compose's: start of
        # a stack with no container, kill or pause of none running.
        stack(*argv, *named, check=verb not in ("start", "kill", "pause", "unpause"))
        done.append(" ".join([verb, *named]))
        apply(model, verb, named)
        after = observed(stack)
        assert {s: state for s, (state, _) in after.items()} == model, done[-6:]
        if verb == "restart":
            for s in named or SERVICES:
                if s in model and before[s][0] == "running":
                    assert after[s][1] != before[s][1], (s, done[-6:])


def test_start_of_a_service_starts_what_it_depends_on_first(stack: CLI) -> None:
    """`start b` after `stop` started b alone, a (which b depends on) left stopped."""
    stack("up", "-d")
    stack("stop")
    stack("start", "b")
    assert {s: state for s, (state, _) in observed(stack).items()} == {
        "a": "running", "b": "running", "c": "exited"}
