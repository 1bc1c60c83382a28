"""Removing what netbridge still holds for a test's root after its daemon stopped."""

from __future__ import annotations

from stackd.roots import Roots


def teardown_networks(roots: Roots) -> list[str]:
    """Remove whatever netbridge still holds for this root (bridges, veths, rules, netns)
    and say what there was: a leftover subnet would break every later test's networks,
    so it is cleaned up even as the test is failed for it."""
    import trio

    from stackd.daemon.desired_store import db_path
    from stackd.leaks import devices
    from stackd.netbridge import Networks
    from stackd.state.db import StateDB

    found = [str(leak) for leak in devices(roots.id) if leak.may_belong_to(roots)]
    if found and db_path(roots.state).exists():
        import stackd.state.allocations  # noqa: F401  (registers its tables)

        db = StateDB.open(db_path(roots.state))
        try:
            trio.run(Networks(roots, db).teardown)
        finally:
            db.close()
    return found
