"""Property: after applying a plan, planning again yields an empty plan.

Hypothesis draws sequences of stacks (services coming and going, scale 0–3,
environment edits, dependencies) and the options Compose users pass; each is applied
in turn to the same fake host, and after every apply the next plan must be empty and
the running containers exactly the desired ones (plus orphans, when not removed).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simstacks import Svc, sim_host, stack, svc

from stackd.reconciler.desired import DesiredState
from stackd.reconciler.diff import PlanOptions

NAMES = ("a", "b", "c", "d")


@st.composite
def stacks(draw: st.DrawFn) -> DesiredState:
    chosen = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True))
    chosen.sort()
    services: list[Svc] = []
    for i, name in enumerate(chosen):
        deps = draw(st.lists(st.sampled_from(chosen[:i]), unique=True)) if i else []
        services.append(svc(name, scale=draw(st.integers(0, 3)), depends=sorted(deps),
                            env={"V": draw(st.sampled_from(["1", "2"]))}))
    return stack("demo", *services)


options = st.builds(PlanOptions, remove_orphans=st.booleans(), force_recreate=st.booleans())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(stacks(), options), min_size=1, max_size=3))
def test_apply_then_plan_is_empty(steps: list[tuple[DesiredState, PlanOptions]]) -> None:
    async def run() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            async with sim_host(Path(tmp)) as host:
                previous: set[str] = set()
                for desired, opts in steps:
                    result = await host.up(desired, opts)
                    assert result.ok, str(result)
                    again = await host.plan(desired, PlanOptions(
                        remove_orphans=opts.remove_orphans))
                    assert again.empty, str(again)
                    wanted = {c.name for c in desired.containers}
                    running = set(host.runtime.running())
                    assert wanted <= running
                    leftovers = running - wanted
                    assert not (opts.remove_orphans and leftovers)
                    # orphans are only what ran before, of services gone from the file
                    assert leftovers <= previous
                    assert all(n.split("-")[1] not in desired.services for n in leftovers)
                    previous = running

    trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))
