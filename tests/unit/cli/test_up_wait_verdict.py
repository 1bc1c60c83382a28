"""`up --wait`'s decision over `ps -a`'s rows (stackd.cli.wait.verdict)."""

from __future__ import annotations

from typing import Any

from stackd.cli.wait import verdict


def row(service: str, state: str = "running", health: str | None = None, **kw: Any
        ) -> dict[str, Any]:
    return {"service": service, "name": f"p-{service}-1", "state": state, "health": health,
            **kw}


def test_running_without_healthcheck_healthy_and_completed_jobs_are_ready() -> None:
    got = verdict([row("web"), row("db", health="healthy"),
                   row("migrate", "exited", exit_code=0)])
    assert got.ready and got.failed is None


def test_starting_created_and_paused_are_pending_by_service() -> None:
    got = verdict([row("db", health="starting"), row("web", "created"),
                   row("cache", paused=True)])
    assert not got.ready and got.failed is None
    assert got.pending == ("cache (paused)", "db (starting)", "web (created)")


def test_unhealthy_or_a_failed_job_fails_at_once_naming_it() -> None:
    assert verdict([row("db", health="unhealthy"), row("web", health="starting")]
                   ).failed == "service 'db': container p-db-1 is unhealthy"
    assert verdict([row("job", "exited", exit_code=2)]).failed == (
        "service 'job': container p-job-1 exited with code 2")


def test_only_the_named_services_count_and_one_offs_never_do() -> None:
    rows = [row("db", health="starting"), row("web"),
            row("web", "exited", exit_code=1, oneoff=True)]
    assert verdict(rows, ["web"]).ready
    assert verdict(rows, ["api"]).pending == ("api (no container)",)


def test_an_exit_not_yet_recorded_is_waited_for_not_a_failure() -> None:
    # ps can list a process that is gone before the monitor has written its exit (CI
    # saw `up --wait` fail with "exited with code None" on a job that exits 0).
    got = verdict([row("job", "exited", exit_code=None), row("web")])
    assert got.failed is None and got.pending == ("job (exiting)",)


def test_a_container_without_healthcheck_is_ready_once_it_has_run_a_moment() -> None:
    # CI saw `up --wait job` return 0 for a job that exits 3 at once: it was seen
    # running the moment it started, and running counted as ready.
    rows = [row("job", started_at=100.0), row("db", health="healthy", started_at=100.0)]
    assert verdict(rows, now=100.2).pending == ("job (just started)",)
    assert verdict(rows, now=100.6).ready
    assert verdict(rows).ready  # no clock given: as before
    assert verdict([row("job")], now=100.2).ready  # no start time known: not held back
