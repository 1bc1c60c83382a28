"""rolling's pure parts: batches in slot order and the failure ratio."""

from __future__ import annotations

from pathlib import Path

from test_diff import actual_of, desired

from stackd.reconciler.diff import plan
from stackd.reconciler.plan import Recreate
from stackd.reconciler.rolling import (
    Rollout,
    annotate,
    batches,
    over_ratio,
    pending,
    resumed,
    rolled,
)
from stackd.reconciler.translate import update_policy
from stackd.spec import load_text

STACK = """
services:
  web:
    image: busybox
    environment: {{V: "{v}"}}
    deploy:
      replicas: 5
      update_config: {{parallelism: 2, order: start-first, monitor: 3s,
                      failure_action: rollback, max_failure_ratio: 0.3, delay: 1s}}
"""


def recreates(tmp_path: Path) -> list[Recreate]:
    old = desired(STACK.format(v=1), tmp_path)
    new = desired(STACK.format(v=2), tmp_path)
    return [a for a in plan(new, actual_of(old)).actions if isinstance(a, Recreate)]


def test_update_config_reaches_the_desired_service(tmp_path: Path) -> None:
    update = desired(STACK.format(v=1), tmp_path).services["web"].update
    assert update is not None
    assert (update.parallelism, update.order, update.monitor.total_seconds(),
            update.failure_action, update.max_failure_ratio, update.delay.total_seconds()) \
        == (2, "start-first", 3.0, "rollback", 0.3, 1.0)


def test_batches_go_in_slot_order_parallelism_at_a_time(tmp_path: Path) -> None:
    actions = list(reversed(recreates(tmp_path)))
    assert [b.label for b in batches(actions, 2)] == [
        "batch 1/3 (web-1, web-2)", "batch 2/3 (web-3, web-4)", "batch 3/3 (web-5)"]
    assert [b.label for b in batches(actions, 0)] == [
        "batch 1/1 (web-1, web-2, web-3, web-4, web-5)"]


def test_over_ratio_is_strictly_more_than_tolerated() -> None:
    assert not over_ratio(0, 5, 0.0)
    assert over_ratio(1, 5, 0.0)
    assert not over_ratio(1, 5, 0.2)
    assert over_ratio(2, 5, 0.2)


def test_the_plan_names_each_recreate_s_batch(tmp_path: Path) -> None:
    old = desired(STACK.format(v=1), tmp_path)
    new = desired(STACK.format(v=2), tmp_path)
    shown = annotate(plan(new, actual_of(old)), new.services)
    assert str(shown) == "\n".join(
        f"web-{i}: recreate — environment changed: V (rolling update batch {b}/3, "
        "start-first)" for i, b in ((1, 1), (2, 1), (3, 2), (4, 2), (5, 3)))


def test_a_service_without_update_config_is_not_rolled(tmp_path: Path) -> None:
    plain = STACK.replace("      update_config: {{parallelism: 2, order: start-first, "
                          "monitor: 3s,\n                      failure_action: rollback, "
                          "max_failure_ratio: 0.3, delay: 1s}}\n", "")
    assert "update_config" not in plain
    old = desired(plain.format(v=1), tmp_path)
    new = desired(plain.format(v=2), tmp_path)
    p = plan(new, actual_of(old))
    assert rolled(p, new.services) == {}
    assert annotate(p, new.services) == p


def test_a_rollback_revision_rolls_with_rollback_config(tmp_path: Path) -> None:
    text = STACK.format(v=1) + "      rollback_config: {parallelism: 0, order: stop-first}\n"
    stack = load_text(text, project_name="demo", environ={}, project_directory=tmp_path)
    svc = stack.services["web"]
    forward, back = update_policy(svc, False), update_policy(svc, True)
    assert forward is not None and (forward.parallelism, forward.order) == (2, "start-first")
    assert back is not None and (back.parallelism, back.order) == (0, "stop-first")
    without = load_text(STACK.format(v=1), project_name="demo", environ={},
                        project_directory=tmp_path).services["web"]
    assert update_policy(without, True) == update_policy(without, False)  # update_config


def test_a_later_pass_numbers_its_batches_after_those_run_before(tmp_path: Path) -> None:
    """Pass 2 of the 5-replica update (batch 1 did web-1, web-2): web-3..5 remain, as
    batches 2/3 and 3/3; a forced recreate of the done slots would not run again."""
    actions = recreates(tmp_path)
    rollout = Rollout(done=(1, 2), batches=1, left=3)
    left = pending(actions, rollout)
    assert [a.resource for a in left] == ["web-3", "web-4", "web-5"]
    assert [b.label for b in batches(left, 2, before=rollout.batches)] == [
        "batch 2/3 (web-3, web-4)", "batch 3/3 (web-5)"]
    new = desired(STACK.format(v=2), tmp_path)
    p = annotate(plan(new, actual_of(desired(STACK.format(v=1), tmp_path))), new.services,
                 {"web": rollout})
    # the done slots' recreates (a forced one would plan them) get no batch: not run
    assert [line.partition(" (")[2] for line in p.lines()] == [
        "", "", "rolling update batch 2/3, start-first)",
        "rolling update batch 2/3, start-first)", "rolling update batch 3/3, start-first)"]
    paused = annotate(plan(new, actual_of(desired(STACK.format(v=1), tmp_path))),
                      new.services, {"web": Rollout(paused="update of web paused: x")})
    assert all(line.endswith("(rolling update paused: update of web paused: x)")
               for line in paused.lines()), paused.lines()


def test_a_rollout_is_kept_as_json_and_a_resume_runs_the_failed_batches_again() -> None:
    r = Rollout(done=(1,), failed=(2, 3), batches=3, failed_batches=2, left=2,
                paused="update of web paused: batch 3/5 (web-3) failed: exited",
                not_before=1.5)
    assert Rollout.from_json(r.to_json()) == r
    assert Rollout.from_json({"done": "x", "batches": None}) == Rollout()
    assert resumed(r) == Rollout(done=(1,), batches=1, left=2, not_before=1.5)
