"""`include` of other projects and `profiles` (--profile and STACKD_PROFILES)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from stackd.errors import SpecError
from stackd.spec import LoadOptions, Stack, load

Write = Callable[[str, str], Path]


def load_file(path: Path, profiles: Sequence[str] = (), environ: dict[str, str] | None = None
              ) -> Stack:
    return load(LoadOptions(files=[str(path)], environ=environ or {}, project_name="p",
                            profiles=list(profiles)))


def test_include_brings_in_another_project(write: Write, tmp_path: Path) -> None:
    write("db/compose.yaml", """\
        services:
          db:
            image: postgres:${PG_VERSION}
            volumes: ["./init:/docker-entrypoint-initdb.d:ro", "pgdata:/var/lib/postgresql"]
        volumes: {pgdata: {}}
        """)
    write("db/.env", "PG_VERSION=16\n")
    f = write("compose.yaml", """\
        include:
          - db/compose.yaml
        services:
          web: {image: web, depends_on: [db]}
        """)
    stack = load_file(f)
    assert sorted(stack.services) == ["db", "web"]
    db = stack.services["db"]
    assert db.image == "postgres:16"  # the included project's own .env
    assert db.volumes[0].source == str(tmp_path / "db/init")
    assert "pgdata" in stack.volumes


def test_include_long_form_and_env_file(write: Write) -> None:
    write("cache/cache.yaml", "services:\n  cache: {image: 'redis:${REDIS}'}\n")
    write("cache/vars.env", "REDIS=7\n")
    f = write("compose.yaml", """\
        include:
          - path: [cache/cache.yaml]
            env_file: cache/vars.env
        services:
          web: {image: web}
        """)
    assert load_file(f).services["cache"].image == "redis:7"


def test_the_including_file_overrides_what_it_includes(write: Write) -> None:
    # compose-go's importResource: a resource defined in both is the included one with
    # the including file's definition merged over it (wger-project/docker's db).
    write("other.yaml", "services:\n  web: {image: other, environment: {A: '1'}}\n"
                        "volumes:\n  data: {labels: {x: '1'}}\n")
    f = write("compose.yaml", "include: [other.yaml]\nservices:\n"
                              "  web: {shm_size: 256mb, environment: {B: '2'}}\n"
                              "volumes:\n  data: {name: kept}\n")
    stack = load_file(f)
    web = stack.services["web"]
    assert web.image == "other" and web.shm_size == 256 * 1024 * 1024
    assert dict(web.environment) == {"A": "1", "B": "2"}
    assert stack.volumes["data"].name == "kept" and stack.volumes["data"].labels == {"x": "1"}


def test_include_cycle_and_missing(write: Write) -> None:
    write("a.yaml", "include: [b.yaml]\nservices: {a: {image: a}}\n")
    write("b.yaml", "include: [a.yaml]\nservices: {b: {image: b}}\n")
    with pytest.raises(SpecError, match="include cycle"):
        load_file(write("compose.yaml", "include: [a.yaml]\n"))
    with pytest.raises(SpecError, match=r"included file '.*nope.yaml' does not exist") as info:
        load_file(write("compose.yaml", "services: {}\ninclude: [nope.yaml]\n"))
    assert info.value.location is not None and info.value.location.line == 2


PROFILED = """\
services:
  web: {image: web}
  debug: {image: busybox, profiles: [debug]}
  metrics: {image: prom, profiles: [monitoring, ops]}
  grafana: {image: grafana, profiles: [monitoring], depends_on: [metrics]}
"""


@pytest.mark.parametrize(("profiles", "env", "services"), [
    ([], {}, ["web"]),
    (["debug"], {}, ["debug", "web"]),
    (["monitoring"], {}, ["grafana", "metrics", "web"]),
    (["ops"], {}, ["metrics", "web"]),
    ([], {"STACKD_PROFILES": "debug,ops"}, ["debug", "metrics", "web"]),
    (["*"], {}, ["debug", "grafana", "metrics", "web"]),
])
def test_profiles(write: Write, profiles: list[str], env: dict[str, str],
                  services: list[str]) -> None:
    stack = load_file(write("compose.yaml", PROFILED), profiles, env)
    assert sorted(stack.services) == services


@pytest.mark.parametrize(("targeted", "services"), [
    (["debug"], ["debug", "web"]),
    # Compose enables the targeted service's profiles: grafana comes with monitoring.
    (["metrics"], ["grafana", "metrics", "web"]),
    (["web", "nosuch"], ["web"]),  # unknown names are the command's to refuse
])
def test_a_service_named_on_the_command_line_has_its_profiles_enabled(
        write: Write, targeted: list[str], services: list[str]) -> None:
    stack = load(LoadOptions(files=[str(write("compose.yaml", PROFILED))], environ={},
                             project_name="p", services=targeted))
    assert sorted(stack.services) == services
    assert stack.disabled == {"debug", "grafana", "metrics"} - set(services)


def test_profiles_from_dotenv(write: Write) -> None:
    f = write("compose.yaml", PROFILED)
    write(".env", "STACKD_PROFILES=debug\n")
    assert sorted(load_file(f).services) == ["debug", "web"]


def test_dependency_on_a_disabled_profile_says_which(write: Write) -> None:
    f = write("compose.yaml", PROFILED + "  app: {image: app, depends_on: [debug]}\n")
    with pytest.raises(SpecError) as info:
        load_file(f)
    assert str(info.value) == (
        "service 'app' depends on 'debug', which is only in profile(s) debug "
        f"({f}:6:34)\n  hint: enable one with --profile debug")


def test_optional_dependency_on_a_disabled_service_is_dropped(write: Write) -> None:
    f = write("compose.yaml", PROFILED + "  app:\n    image: app\n    depends_on:\n"
                                         "      debug: {condition: service_started, "
                                         "required: false}\n")
    assert load_file(f).services["app"].depends_on == {}


def test_label_files_are_read_into_labels_the_services_own_winning(write: Write) -> None:
    write("app.labels", "# owner\ntier=backend\nteam=core\n")
    write("more.labels", "extra=1\n")
    f = write("compose.yaml", "services:\n"
              "  a: {image: x, label_file: ./app.labels, labels: {tier: web}}\n"
              "  b: {image: x, label_file: [./app.labels, ./more.labels]}\n")
    stack = load_file(f)
    assert stack.services["a"].labels == {"team": "core", "tier": "web"}
    assert stack.services["b"].labels == {"extra": "1", "team": "core", "tier": "backend"}


def test_a_missing_label_file_is_named_with_its_place(write: Write) -> None:
    f = write("compose.yaml", "services:\n  a: {image: x, label_file: ./none.labels}\n")
    with pytest.raises(SpecError) as info:
        load_file(f)
    assert "label_file" in str(info.value) and "none.labels' does not exist" in str(info.value)
