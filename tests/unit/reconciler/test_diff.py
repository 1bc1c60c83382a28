"""diff.plan is pure: desired + observed → the plan, compared as golden text."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from stackd.images.models import Image, ImageConfig
from stackd.reconciler.actual import ActualContainer, ActualState
from stackd.reconciler.asks import up_view
from stackd.reconciler.desired import DesiredContainer, DesiredState
from stackd.reconciler.diff import PlanOptions, plan
from stackd.reconciler.plan import Create, Recreate, Remove
from stackd.reconciler.translate import TranslateInputs, desired_state
from stackd.spec import load_text
from stackd.state.intents import Intent

IMAGE = Image(id="sha256:" + "1" * 64, digest="sha256:" + "a" * 64, references=(),
              config=ImageConfig(cmd=("sh",)), layer_dirs=("/l",))


def desired(text: str, tmp_path: Path, image: Image = IMAGE) -> DesiredState:
    stack = load_text(text, project_name="demo", environ={}, project_directory=tmp_path)
    inputs = TranslateInputs(volume_path=lambda n: f"/v/{n}", file_path=lambda d: f"/f/{d}",
                         read_file=lambda p: b"")
    return desired_state(stack, {n: image for n in stack.services}, inputs)


def running(c: DesiredContainer, status: str = "running", exit_code: int | None = None
            ) -> ActualContainer:
    return ActualContainer(c.id, c.name, c.service, c.index, status, c.config_hash.digest,
                           dict(c.config_hash.fields), c.env, exit_code)


def actual_of(d: DesiredState, *extra: ActualContainer, nets: bool = True) -> ActualState:
    return ActualState("demo", tuple(running(c) for c in d.containers) + extra,
                       frozenset(d.networks) if nets else frozenset(), frozenset(d.volumes))


STACK = """
services:
  web: {image: busybox, scale: 2, environment: {A: "1", B: "1", C: "1"}}
  db: {image: busybox, volumes: ["data:/data"]}
volumes: {data: {}}
"""


def test_first_plan_golden(tmp_path: Path) -> None:
    d = desired(STACK, tmp_path)
    assert str(plan(d, ActualState("demo"))) == """\
network demo_default: create — declared in the stack
volume demo_data: create — declared in the stack
db-1: create — new service
web-1: create — new service
web-2: create — new service"""


def test_nothing_to_do_is_said_so(tmp_path: Path) -> None:
    d = desired(STACK, tmp_path)
    p = plan(d, actual_of(d))
    assert p.empty
    assert str(p) == "demo: nothing to do, the stack already matches"


def test_recreate_causes_name_the_fields_and_the_variables(tmp_path: Path) -> None:
    old = desired(STACK, tmp_path)
    new_image = IMAGE.model_copy(update={"digest": "sha256:" + "b" * 64})
    new = desired(STACK.replace('A: "1", B: "1", C: "1"', 'A: "2", C: "1", D: "1"')
                  .replace("scale: 2", "scale: 2, command: [httpd]"), tmp_path, new_image)
    assert str(plan(new, actual_of(old))) == """\
db-1: recreate — image changed
web-1: recreate — image changed; command changed; environment changed: A, B, D
web-2: recreate — image changed; command changed; environment changed: A, B, D"""


def test_a_container_without_field_digests_still_recreates(tmp_path: Path) -> None:
    d = desired(STACK, tmp_path)
    (db,) = d.containers_of("db")
    stale = ActualContainer(db.id.replace(db.id[-8:], "00000000"), db.name, "db", 1,
                            "running", config_hash="0" * 64)
    actual = ActualState("demo", (stale, *(running(c) for c in d.containers_of("web"))),
                         frozenset(d.networks), frozenset(d.volumes))
    assert plan(d, actual).lines() == ["db-1: recreate — config hash changed"]


def test_up_starts_created_and_exited_containers_finished_jobs_too(tmp_path: Path) -> None:
    """Compose's `up` starts every container of its services that is not running: a
    one-shot job that finished (exit 0) runs again. `up` left it alone, so a second
    `stackd up tests` did nothing and followed logs that never came."""
    d = desired("""
services:
  web: {image: busybox}
  crashed: {image: busybox}
  job: {image: busybox}
""", tmp_path)
    web, crashed, job = (d.containers_of(s)[0] for s in ("web", "crashed", "job"))
    actual = ActualState("demo", (running(web, "created"), running(crashed, "exited", 1),
                                  running(job, "exited", 0)), frozenset(d.networks))
    # The reconcile loop's own plan: the restart policy decides about exits.
    assert plan(d, actual).lines() == ["web-1: start — created, never started"]
    # An explicit `up`'s (asks.py): every exited container of its services.
    assert plan(d, *up_view(d, actual, PlanOptions())).lines() == [
        "crashed-1: start — exited (code 1)", "job-1: start — exited (code 0)",
        "web-1: start — created, never started"]
    assert plan(d, *up_view(d, actual, PlanOptions(services=("job",)))).lines() == [
        "job-1: start — exited (code 0)"]


def test_duplicates_and_interrupted_removes(tmp_path: Path) -> None:
    d = desired("services: {web: {image: busybox}}", tmp_path)
    (web,) = d.containers
    dup = ActualContainer("demo-web-1-deadbeef", "demo-web-1", "web", 1, "exited",
                          config_hash="f" * 64)
    gone = ActualContainer("demo-old-1-12345678", "demo-old-1", "old", 1, "running",
                           anonymous=("demo_old-1_0123abcd",))
    pending = (Intent(7, "demo", "remove", "old-1", gone.id, "old-1: remove — orphan"),)
    actual = ActualState("demo", (running(web), dup, gone), frozenset(d.networks),
                         pending=pending)
    p = plan(d, actual)
    assert str(p) == """\
web-1: remove — duplicate of web-1
old-1: remove — finishing an interrupted remove"""
    # Its anonymous volume is set apart, as the remove would have (or kept it for -v).
    assert [a.detach for a in p.actions if isinstance(a, Remove)] == [
        (), ("demo_old-1_0123abcd",)]


def test_orphan_warning_and_network_cleanup(tmp_path: Path) -> None:
    d = desired("services: {web: {image: busybox}}", tmp_path)
    orphan = ActualContainer("demo-old-1-12345678", "demo-old-1", "old", 1, "running")
    actual = ActualState("demo", (*(running(c) for c in d.containers), orphan),
                         frozenset({*d.networks, "demo_back"}))
    assert str(plan(d, actual)) == (
        "demo: nothing to do, the stack already matches\n"
        "warning: orphan container demo-old-1 (service old is not in the stack); "
        "run with --remove-orphans to remove it")
    assert plan(d, actual, PlanOptions(remove_orphans=True)).lines() == [
        "old-1: remove — orphan: service old is not in the stack",
        "network demo_back: remove — no longer declared",
    ]


def test_a_service_its_profiles_left_out_is_kept_and_no_orphan(tmp_path: Path) -> None:
    """Compose's rule: `--profile tools up` then `up` leaves the tools running, without
    an orphan warning, and --remove-orphans does not take them either."""
    d = desired("services: {web: {image: busybox}}", tmp_path)
    tools = ActualContainer("demo-tools-1-12345678", "demo-tools-1", "tools", 1, "running")
    actual = ActualState("demo", (*(running(c) for c in d.containers), tools),
                         frozenset(d.networks))
    left_out = frozenset({"tools"})
    assert str(plan(d, actual, PlanOptions(disabled=left_out))) == (
        "demo: nothing to do, the stack already matches")
    assert plan(d, actual, PlanOptions(disabled=left_out, remove_orphans=True)).lines() == []


def test_a_held_container_is_stopped_and_never_started_again(tmp_path: Path) -> None:
    import dataclasses

    d = desired(STACK, tmp_path)
    web1, web2 = d.containers_of("web")
    (db,) = d.containers_of("db")
    actual = ActualState("demo", (running(db, "exited", 1), running(web1), running(web2)),
                         frozenset(d.networks), frozenset(d.volumes),
                         held=frozenset({db.id, web1.id}))
    # a held running container is stopped, a held exited one is not started even when
    # asked to (`up` clears the hold first)
    assert plan(d, actual, PlanOptions(start=frozenset({db.id}))).lines() == [
        "web-1: stop — held: stopped by the user"]
    # held and removed (`rm`): not made again
    gone = dataclasses.replace(actual, containers=(running(web2),))
    assert plan(d, gone).lines() == []
    assert plan(d, dataclasses.replace(gone, held=frozenset())).lines() == [
        "db-1: create — new service", "web-1: create — missing"]


def test_volumes_of_a_container_rm_removed_are_not_made_again(tmp_path: Path) -> None:
    """`rm -v` removes a container and its anonymous volume; the reconcile after it
    made the volume again, empty, for a container that stays gone until `up`."""
    d = desired("""
services:
  db: {image: busybox, volumes: ["data:/data", "/scratch"]}
  web: {image: busybox, volumes: ["/cache"]}
volumes: {data: {}}
""", tmp_path)
    (db,) = d.containers_of("db")
    (web,) = d.containers_of("web")
    (anon,) = web.anonymous
    gone = ActualState("demo", (running(db),), frozenset(d.networks),
                       frozenset(d.volumes) - {anon}, held=frozenset({web.id}))
    assert plan(d, gone).lines() == []
    # `up` takes the hold away: the container and its volume are made again.
    assert plan(d, dataclasses.replace(gone, held=frozenset())).lines() == [
        f"volume {anon}: create — declared in the stack", "web-1: create — new service"]


def test_start_and_restart_name_containers(tmp_path: Path) -> None:
    d = desired(STACK, tmp_path)
    web1, web2 = d.containers_of("web")
    (db,) = d.containers_of("db")
    actual = ActualState("demo", (running(db, "exited", 0), running(web1), running(web2)),
                         frozenset(d.networks), frozenset(d.volumes))
    # The loop's plan leaves a finished job alone; `start` starts it; `restart`
    # restarts running ones
    assert plan(d, actual).empty
    assert plan(d, actual, PlanOptions(start=frozenset({db.id}),
                                       restart=frozenset({web2.id}))).lines() == [
        "db-1: start — exited (code 0)", "web-2: restart — restart requested"]


def test_stop_start_and_restart_reach_services_the_last_up_did_not_name(
        tmp_path: Path) -> None:
    """`up -d web`, then `stop db`, `start db` or `restart db`: each did nothing and
    said nothing, because db was not among the services the last `up` named."""
    d = desired(STACK, tmp_path)
    (db,) = d.containers_of("db")
    web_only = PlanOptions(services=("web",))
    held = dataclasses.replace(actual_of(d), held=frozenset({db.id}))
    assert plan(d, held, web_only).lines() == ["db-1: stop — held: stopped by the user"]
    exited = ActualState("demo", (running(db, "exited", 137),
                                  *(running(c) for c in d.containers_of("web"))),
                         frozenset(d.networks), frozenset(d.volumes))
    assert plan(d, exited, web_only).empty  # not asked: left as it is
    assert plan(d, exited, dataclasses.replace(web_only, start=frozenset({db.id}))
                ).lines() == ["db-1: start — exited (code 137)"]
    assert plan(d, actual_of(d), dataclasses.replace(web_only, restart=frozenset({db.id}))
                ).lines() == ["db-1: restart — restart requested"]


def test_up_one_service_brings_what_it_needs_by_any_edge(tmp_path: Path) -> None:
    # links and depends_on both make `up web` start the target: the scheduler's rule.
    d = desired("""
services:
  web: {image: busybox, links: [cache], depends_on: [db]}
  db: {image: busybox}
  cache: {image: busybox}
  other: {image: busybox}
""", tmp_path)
    p = plan(d, ActualState("demo", networks=frozenset(d.networks)),
             PlanOptions(services=("web",)))
    assert p.lines() == ["cache-1: create — new service", "db-1: create — new service",
                         "web-1: create — new service"]
    alone = plan(d, ActualState("demo", networks=frozenset(d.networks)),
                 PlanOptions(services=("web",), no_deps=True))
    assert alone.lines() == ["web-1: create — new service"]


NETS = """
services:
  web: {image: busybox, networks: [front]}
  db: {image: busybox, networks: [back]}
networks:
  front: {ipam: {config: [{subnet: 10.99.1.0/24}]}}
  back: {}
"""


def test_a_network_whose_configuration_changed_is_recreated_with_its_containers(
        tmp_path: Path) -> None:
    from dataclasses import replace

    from stackd.netbridge.model import network_hash

    old = desired(NETS, tmp_path)
    recorded = {k: network_hash(n) for k, n in old.networks.items()}
    same = replace(actual_of(old), network_hashes=recorded)
    assert plan(old, same).empty
    unrecorded = replace(actual_of(old), network_hashes={k: "" for k in recorded})
    assert plan(desired(NETS.replace("10.99.1.0", "10.99.2.0"), tmp_path), unrecorded).empty
    for change in (NETS.replace("10.99.1.0", "10.99.2.0"),
                   NETS.replace("subnet: 10.99.1.0/24}]}", "subnet: 10.99.1.0/24}]}, "
                                "internal: true"),
                   NETS.replace("subnet: 10.99.1.0/24}]}", "subnet: 10.99.1.0/24}]}, "
                                "labels: {tier: web}")):
        new = desired(change, tmp_path)
        # Only db's network stays as it was: db is left alone, even on `up db`.
        for options in (PlanOptions(), PlanOptions(services=("db",))):
            assert str(plan(new, same, options)) == """\
network demo_front: recreate — its configuration changed
web-1: create — network demo_front recreated
web-1: remove — network demo_front recreated"""
    # A slot of an unselected service with no container is not created by it.
    no_web = replace(same, containers=tuple(c for c in same.containers if c.service != "web"))
    assert plan(new, no_web, PlanOptions(services=("db",))).lines() == [
        "network demo_front: recreate — its configuration changed"]


def test_the_network_hash_counts_every_field_but_identity() -> None:
    from dataclasses import replace

    from stackd.netbridge.model import NETWORK_HASH_EXCLUDED, NetworkSpec, network_hash

    base = NetworkSpec(key="demo_front", project="demo", name="front", subnet="10.9.0.0/24")
    h = network_hash(base)
    for change in ({"subnet": "10.9.1.0/24"}, {"gateway": "10.9.0.9"}, {"internal": True},
                   {"labels": {"a": "b"}}, {"driver_opts": {"x": "y"}}):
        assert network_hash(replace(base, **change)) != h, change  # type: ignore[arg-type]
    assert set(NETWORK_HASH_EXCLUDED) == {"key", "project", "name", "external"}
    assert network_hash(replace(base, key="x_front", project="x", name="f",
                                external=True)) == h


def test_a_restart_true_dependent_is_restarted_even_when_not_named(tmp_path: Path) -> None:
    """`up --force-recreate db` restarts app, which depends on db with restart: true
    (Compose's rule), though only db was named; and a service in db's network namespace
    has that dependency implied."""
    d = desired("services:\n  db: {image: busybox}\n"
                "  app: {image: busybox, depends_on: {db: {condition: service_started, "
                "restart: true}}}\n"
                "  side: {image: busybox, network_mode: 'service:db'}\n"
                "  other: {image: busybox}\n", tmp_path)
    p = plan(d, actual_of(d), PlanOptions(services=("db",), force_recreate=True))
    assert p.lines() == [
        "db-1: recreate — forced (--force-recreate)",
        "app-1: restart — db recreated (depends_on restart: true)",
        "side-1: restart — db recreated (depends_on restart: true)",
    ]


def test_a_users_restart_restarts_the_dependents_that_say_restart_true(tmp_path: Path) -> None:
    """Compose's `restart db`: app (depends_on db with restart: true) is restarted after
    it, and what depends on app that way in turn; `other` (plain depends_on) is not.
    With --no-deps, db alone."""
    d = desired("services:\n  db: {image: busybox}\n"
                "  app: {image: busybox, depends_on: {db: {condition: service_started, "
                "restart: true}}}\n"
                "  edge: {image: busybox, depends_on: {app: {condition: service_started, "
                "restart: true}}}\n"
                "  other: {image: busybox, depends_on: [db]}\n", tmp_path)
    db = next(c.id for c in d.containers if c.service == "db")
    asked = plan(d, actual_of(d), PlanOptions(restart=frozenset({db}),
                                              restart_dependents=True))
    assert asked.lines() == [
        "db-1: restart — restart requested",
        "app-1: restart — db restarted (depends_on restart: true)",
        "edge-1: restart — app restarted (depends_on restart: true)",
    ]
    alone = plan(d, actual_of(d), PlanOptions(restart=frozenset({db})))
    assert alone.lines() == ["db-1: restart — restart requested"]


def test_force_recreate_is_for_the_named_services_and_their_dependencies_follow_a_flag(
        tmp_path: Path) -> None:
    """Compose's rule: `up --force-recreate web` recreates web; db, which web needs, is
    recreated only if it changed, or with --always-recreate-deps. Named none, all are."""
    d = desired("services:\n  db: {image: busybox}\n"
                "  web: {image: busybox, depends_on: [db]}\n", tmp_path)
    named = plan(d, actual_of(d), PlanOptions(services=("web",), force_recreate=True))
    assert named.lines() == ["web-1: recreate — forced (--force-recreate)"]
    deps = plan(d, actual_of(d), PlanOptions(services=("web",), force_recreate=True,
                                             recreate_deps=True))
    assert sorted(deps.lines()) == ["db-1: recreate — forced (--always-recreate-deps)",
                                    "web-1: recreate — forced (--force-recreate)"]
    only_deps = plan(d, actual_of(d), PlanOptions(services=("web",), recreate_deps=True))
    assert only_deps.lines() == ["db-1: recreate — forced (--always-recreate-deps)"]
    every = plan(d, actual_of(d), PlanOptions(force_recreate=True))
    assert sorted(every.lines()) == ["db-1: recreate — forced (--force-recreate)",
                                     "web-1: recreate — forced (--force-recreate)"]


def test_a_grace_given_reaches_every_container_the_plan_stops_or_replaces(
        tmp_path: Path) -> None:
    """`up -t 2`: the recreated, the scaled down and the orphan get 2 s, not their
    stop_grace_period; without it each keeps its own (None)."""
    d = desired("services:\n"
                "  web: {image: busybox, stop_grace_period: 1m}\n"
                "  db: {image: busybox, stop_grace_period: 1m}\n", tmp_path)
    db, web = sorted(d.containers, key=lambda c: c.service)
    extra = ActualContainer("demo-web-2-0000", "demo-web-2", "web", 2, "running",
                            web.config_hash.digest)
    orphan = ActualContainer("demo-old-1-0000", "demo-old-1", "old", 1, "running", "x")
    actual = ActualState("demo", (running(web), dataclasses.replace(running(db),
                                                                    config_hash="changed"),
                                  extra, orphan),
                         frozenset(d.networks), frozenset(d.volumes))
    graced = plan(d, actual, PlanOptions(remove_orphans=True, grace=2.0))
    stopping = [a for a in graced.actions if isinstance(a, Recreate | Remove)]
    assert sorted(a.resource for a in stopping) == ["db-1", "old-1", "web-2"]
    assert {a.grace for a in stopping} == {2.0}
    plain = plan(d, actual, PlanOptions(remove_orphans=True))
    assert {a.grace for a in plain.actions if isinstance(a, Recreate | Remove)} == {None}


def test_renewing_anonymous_volumes_is_part_of_each_create_and_recreate(
        tmp_path: Path) -> None:
    """`up -V`: a created or recreated container gets its anonymous volumes (and only
    those) made afresh; a dependency's restart keeps the same container, and its data."""
    d = desired("services:\n"
                "  db: {image: busybox, volumes: [/data, 'named:/named']}\n"
                "  app: {image: busybox, volumes: [/cache], depends_on: {db: {condition: "
                "service_started, restart: true}}}\n"
                "  new: {image: busybox, volumes: [/scratch]}\n"
                "volumes: {named: {}}\n", tmp_path)
    by = {c.service: c for c in d.containers}
    assert len(by["db"].anonymous) == 1 and by["db"].anonymous[0] in by["db"].volumes
    assert "demo_named" in by["db"].volumes and "demo_named" not in by["db"].anonymous
    actual = dataclasses.replace(actual_of(d), containers=tuple(
        c for c in actual_of(d).containers if c.service != "new"))
    p = plan(d, actual, PlanOptions(force_recreate=True, services=("db", "new"),
                                    renew_anon_volumes=True))
    renewed = {a.resource: a.renew for a in p.actions if isinstance(a, Create | Recreate)}
    assert renewed == {"db-1": by["db"].anonymous, "new-1": by["new"].anonymous,
                       "app-1": ()}  # app: restarted (depends_on restart: true)
    assert "db-1: recreate — forced (--force-recreate); new anonymous volumes (-V)" \
        in p.lines()
    plain = plan(d, actual, PlanOptions(force_recreate=True))
    assert {a.renew for a in plain.actions if isinstance(a, Create | Recreate)} == {()}


def test_down_sets_anonymous_volumes_apart_and_down_v_removes_them(tmp_path: Path) -> None:
    """A new container of Compose's starts with new anonymous volumes: after `down`,
    the slot's are kept but set apart (its label names them), not found again by the
    next `up`. `down -v` removes them with the rest."""
    from stackd.reconciler.actual import container_from_view
    from stackd.reconciler.diff import plan_down
    from stackd.reconciler.plan import VolumeRemove
    from stackd.runtime.model import ContainerState

    d = desired("services:\n  db: {image: busybox, volumes: ['/scratch', 'data:/d']}\n"
                "volumes: {data: {}}\n", tmp_path)
    (db,) = d.containers_of("db")
    (anon,) = db.anonymous
    view = ContainerState(id=db.id, name=db.name, labels=dict(db.spec.labels),
                          status="running", pid=1, started_at=None, finished_at=None,
                          exit=None, netns_path=None, spec=db.spec)
    found = container_from_view(view)
    assert found is not None and found.anonymous == (anon,)
    actual = ActualState("demo", (found,), frozenset(d.networks), frozenset(d.volumes))
    (remove, _net) = plan_down(actual).actions
    assert isinstance(remove, Remove) and remove.detach == (anon,)
    with_v = plan_down(actual, remove_volumes=True).actions
    assert [a.detach for a in with_v if isinstance(a, Remove)] == [()]
    assert sorted(a.name for a in with_v if isinstance(a, VolumeRemove)) == sorted(d.volumes)


def test_a_slot_that_ends_sets_its_anonymous_volumes_apart(tmp_path: Path) -> None:
    """Scaled down (or an orphan removed), the slot ends: a later scale up makes a new
    container with new anonymous volumes, as Compose's. A duplicate of a slot that goes
    on leaves them: the kept container mounts them."""
    two = desired("services:\n  web: {image: busybox, scale: 2, volumes: ['/s']}\n", tmp_path)
    one = desired("services:\n  web: {image: busybox, scale: 1, volumes: ['/s']}\n", tmp_path)
    web1, web2 = (dataclasses.replace(running(c), anonymous=c.anonymous)
                  for c in two.containers_of("web"))
    actual = ActualState("demo", (web1, web2), frozenset(one.networks),
                         frozenset(two.volumes))
    (remove,) = plan(one, actual).actions
    assert isinstance(remove, Remove) and remove.container_id == web2.id
    assert remove.detach == web2.anonymous and web2.anonymous
    twin = dataclasses.replace(web1, id=web1.id + "x")
    dup = ActualState("demo", (web1, twin), frozenset(one.networks), frozenset(one.volumes))
    (remove,) = plan(one, dup).actions
    assert remove.cause.startswith("duplicate") and remove.detach == ()


def test_a_removal_sets_apart_only_the_projects_own_anonymous_volumes(tmp_path: Path) -> None:
    """A label naming another stack's volume (a container made before labels under
    io.stackd. were refused, or written by hand) does not make `down` touch it."""
    from stackd.reconciler.actual import container_from_view
    from stackd.reconciler.diff import plan_down
    from stackd.runtime.model import ContainerState

    d = desired("services:\n  db: {image: busybox, volumes: ['/scratch']}\n", tmp_path)
    (db,) = d.containers_of("db")
    (anon,) = db.anonymous
    labels = {**db.spec.labels, "io.stackd.anonymous-volumes": f"{anon},victim_data"}
    view = ContainerState(id=db.id, name=db.name, labels=labels, status="running", pid=1,
                          started_at=None, finished_at=None, exit=None, netns_path=None,
                          spec=db.spec)
    found = container_from_view(view)
    assert found is not None and found.anonymous == (anon,)
    (remove, _net) = plan_down(ActualState("demo", (found,), frozenset(d.networks))).actions
    assert isinstance(remove, Remove) and remove.detach == (anon,)
