"""What real public compose files use that the loader refused (found by loading the
public corpus, tests/compose_corpus/public/MANIFEST.json): each now read as compose-go
reads it. The snippets are written here, not copied."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stackd.errors import SpecError
from stackd.scheduler.from_stack import from_stack
from stackd.spec import load_text


def test_an_empty_platform_is_unset() -> None:
    # `platform: ${DOCKER_PLATFORM:-}` (getsentry/self-hosted) with the variable unset.
    stack = load_text("services:\n  web:\n    image: x\n    platform: ${P:-}\n", environ={})
    assert stack.services["web"].platform is None


def test_legacy_external_name_is_external_with_that_name() -> None:
    # The v3 file format's `external: {name: …}` (big-data-europe/docker-hadoop).
    stack = load_text("services:\n  a: {image: x, networks: [hb], volumes: ['v:/v']}\n"
                      "networks:\n  hb:\n    external:\n      name: hbase\n"
                      "volumes:\n  v:\n    external: {name: shared}\n", environ={})
    assert stack.networks["hb"].external and stack.networks["hb"].name == "hbase"
    assert stack.volumes["v"].external and stack.volumes["v"].name == "shared"
    with pytest.raises(SpecError, match="external: unknown key 'nmae'"):
        load_text("services: {a: {image: x}}\nvolumes:\n  v: {external: {nmae: s}}\n",
                  environ={})


def test_mem_reservation_is_the_memory_placement_reserves() -> None:
    # SonarSource/docker-sonarqube's examples.
    stack = load_text("services:\n  s: {image: x, mem_reservation: 512m, mem_limit: 1g}\n",
                      environ={})
    (node,) = from_stack(stack)
    assert node.reservations.memory == 512 * 1024 * 1024
    assert node.limits.memory == 1024 * 1024 * 1024


def test_develop_watch_rules_are_read_for_stackd_watch(tmp_path: Path) -> None:
    # fastapi/full-stack-fastapi-template's compose.override.yml, and the other actions.
    stack = load_text(
        "services:\n  web:\n    image: x\n    develop:\n      watch:\n"
        "        - {action: sync, path: ./app, target: /app, ignore: [node_modules/]}\n"
        "        - {action: rebuild, path: ./pyproject.toml}\n"
        "        - action: sync+exec\n          path: conf\n          target: /etc/app\n"
        "          exec: {command: app reload, user: app}\n",
        environ={}, project_directory=tmp_path)
    assert stack.warnings == ()  # `up` leaves develop be, as Compose's does, quietly
    develop = stack.services["web"].develop
    assert develop is not None
    sync, rebuild, execute = develop.watch
    assert (sync.action, sync.path, sync.target, sync.ignore) == (
        "sync", str(tmp_path / "app"), "/app", ("node_modules/",))
    assert (rebuild.action, rebuild.path) == ("rebuild", str(tmp_path / "pyproject.toml"))
    assert execute.exec is not None and execute.exec.command == ("app", "reload")
    assert execute.exec.user == "app"


@pytest.mark.parametrize(("rule", "message"), [
    ("{action: sync, path: .}", "action sync needs target: an absolute path"),
    ("{action: sync, path: ., target: app}", "action sync needs target: an absolute path"),
    ("{action: rebuild, path: ., target: /x}", "action rebuild takes no target"),
    ("{action: sync+exec, path: ., target: /x}", "exec: goes with action sync+exec"),
    ("{action: copy, path: .}", "action"),
    ("{action: sync, path: ., target: /x, poll: 1}", "poll"),
])
def test_a_bad_watch_rule_is_refused_naming_it(rule: str, message: str) -> None:
    with pytest.raises(SpecError, match=re.escape(message)):
        load_text(f"services:\n  web:\n    image: x\n    develop:\n      watch:\n"
                  f"        - {rule}\n", environ={})


def test_dockerfile_inline_is_read_and_excludes_dockerfile() -> None:
    stack = load_text("services:\n  t:\n    build:\n      context: .\n"
                      "      dockerfile_inline: |\n        FROM scratch\n", environ={})
    build = stack.services["t"].build
    assert build is not None and build.dockerfile_inline == "FROM scratch\n"
    with pytest.raises(SpecError, match="dockerfile and dockerfile_inline are both set"):
        load_text("services:\n  t:\n    build: {dockerfile: D, dockerfile_inline: 'FROM x'}\n",
                  environ={})


def test_an_empty_network_or_volume_name_is_unset() -> None:
    # `name: ${PENPOT_POSTGRES_DATA_VOLUME}` with the variable unset (penpot's devenv).
    stack = load_text("services: {a: {image: x, volumes: ['v:/v']}}\n"
                      "volumes:\n  v: {name: '${NOPE}'}\nnetworks:\n  n: {name: ''}\n",
                      environ={})
    assert stack.volumes["v"].name is None and stack.networks["n"].name is None
