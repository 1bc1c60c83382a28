"""What of an apply's options the daemon's later resyncs of the same revision keep:
what the user asked of that one `up` (rebuild, recreate, renew volumes, a stop grace)
happens once, not at every pass of a level-triggered loop."""

from __future__ import annotations

from stackd.daemon.engine import steady
from stackd.daemon.models import ApplyOptions


def test_a_resync_drops_what_was_asked_of_one_up_and_keeps_what_the_stack_is() -> None:
    asked = ApplyOptions(build=True, force_recreate=True, renew_anon_volumes=True,
                         always_recreate_deps=True,
                         timeout=3, pull="always", no_build=False, scale={"web": 3},
                         remove_orphans=True)
    later = steady(asked)
    assert (later.build, later.force_recreate, later.renew_anon_volumes, later.timeout,
            later.pull) == (False, False, False, None, None)
    assert later.scale == {"web": 3} and later.remove_orphans
    assert not later.always_recreate_deps
    # --no-build says how this revision is made: a resync does not build it either.
    assert steady(ApplyOptions(no_build=True)).no_build
