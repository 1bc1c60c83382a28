"""When an attached `up` ends by itself, and the exits it tells of on the way."""

from __future__ import annotations

from typing import Any

from stackd.cli.followed import all_ended, exits


def row(service: str, state: str, **kw: Any) -> dict[str, Any]:
    return {"id": f"{service}-id", "name": f"p-{service}-1", "service": service,
            "state": state, "exit_code": kw.pop("exit_code", 0 if state == "exited" else None),
            "started_at": 1.0, "ended": kw.pop("ended", state == "exited"), **kw}


def test_up_ends_once_every_watched_container_exited_for_good() -> None:
    job, db = row("job", "exited"), row("db", "running")
    assert all_ended([job, db], ["job"])  # `up job`: db was only started for it
    assert not all_ended([job, db], None)  # plain `up`: db is followed on
    assert all_ended([], ["job"])  # nothing to watch (scale 0), as Compose's


def test_an_exit_its_restart_policy_or_supervisor_is_still_handling_does_not_end_it() -> None:
    # Exited, its policy will start it again.
    assert not all_ended([row("web", "exited", ended=False, restarting=True)], None)
    # Exited on the record, not yet seen by its supervisor (whose policy decides).
    assert not all_ended([row("web", "exited", ended=False)], None)
    # A row without the field (a daemon before it): exited and not restarting.
    old = row("web", "exited")
    del old["ended"]
    assert all_ended([old], None)
    assert not all_ended([dict(old, restarting=True)], None)


def test_one_off_containers_are_not_watched() -> None:
    assert all_ended([row("job", "exited"), row("job", "running", oneoff=True)], None)


def test_each_run_is_told_of_once() -> None:
    told: set[tuple[str, Any]] = set()
    rows = [row("job", "exited", exit_code=3), row("db", "running"),
            row("gone", "exited", exit_code=None, ended=False)]
    assert exits(rows, told) == ["p-job-1 exited with code 3"]
    assert exits(rows, told) == []
    assert exits([dict(rows[0], started_at=2.0)], told) == ["p-job-1 exited with code 3"]
