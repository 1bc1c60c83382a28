"""`extends` within a file, across files, recursively, and its cycles."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from stackd.errors import SpecError
from stackd.spec import LoadOptions, Stack, load

Write = Callable[[str, str], Path]


def load_file(path: Path, **kw: object) -> Stack:
    return load(LoadOptions(files=[str(path)], environ={}, project_name="p", **kw))  # type: ignore[arg-type]


def test_extends_in_the_same_file(write: Write) -> None:
    f = write("compose.yaml", """\
        services:
          base:
            image: app:1
            environment: {A: "1", B: "1"}
            command: [serve]
            ports: ["8080:80"]
          web:
            extends: base
            environment: {B: "2"}
            command: [serve, --web]
        """)
    web = load_file(f).services["web"]
    assert web.image == "app:1"
    assert web.environment == {"A": "1", "B": "2"}
    assert web.command == ("serve", "--web")
    assert [p.published for p in web.ports] == ["8080"]


def test_extends_recursively_and_long_form(write: Write) -> None:
    f = write("compose.yaml", """\
        services:
          a: {image: a, labels: {from: a}, user: alice}
          b: {extends: {service: a}, labels: {also: b}}
          c: {extends: b, user: carol}
        """)
    c = load_file(f).services["c"]
    assert (c.image, c.labels, c.user) == ("a", {"from": "a", "also": "b"}, "carol")


def test_extends_from_another_file_resolves_its_paths_there(write: Write, tmp_path: Path) -> None:
    write("common/base.yaml", """\
        services:
          app:
            build: ./src
            env_file: app.env
            volumes: ["./static:/static:ro"]
          root:
            extends: app
            user: root
        """)
    write("common/app.env", "FROM_FILE=yes\n")
    f = write("compose.yaml", """\
        services:
          web:
            extends: {file: common/base.yaml, service: root}
            volumes: ["./local:/local"]
        """)
    web = load_file(f).services["web"]
    assert web.build is not None and web.build.context == str(tmp_path / "common/src")
    assert web.user == "root"
    assert web.environment == {"FROM_FILE": "yes"}
    assert [v.source for v in web.volumes] == [str(tmp_path / "common/static"),
                                               str(tmp_path / "local")]


def test_extends_cycle_is_reported_with_the_chain(write: Write) -> None:
    f = write("compose.yaml", """\
        services:
          a: {extends: b, image: x}
          b: {extends: c}
          c: {extends: a}
        """)
    with pytest.raises(SpecError) as info:
        load_file(f)
    assert str(info.value).startswith(
        "extends cycle: compose.yaml:a → compose.yaml:b → compose.yaml:c → compose.yaml:a (")


def test_an_extends_chain_past_the_limit_is_a_spec_error(write: Write) -> None:
    """A chain of 1,500 ended in a RecursionError traceback."""
    from stackd.spec.extends import MAX_CHAIN

    body = ["services:", "  s0: {image: x}"]
    body += [f"  s{i}: {{extends: s{i - 1}}}" for i in range(1, 1500)]
    with pytest.raises(SpecError, match=rf"its extends chain is longer than {MAX_CHAIN} "
                                        r"services \(…, 's\d+' extends 's\d+'\)"):
        load_file(write("compose.yaml", "\n".join(body) + "\n"))
    body = ["services:", "  s0: {image: x}"]
    body += [f"  s{i}: {{extends: s{i - 1}}}" for i in range(1, MAX_CHAIN + 1)]
    assert load_file(write("compose.yaml", "\n".join(body) + "\n")).services[
        f"s{MAX_CHAIN}"].image == "x"


def test_extends_cycle_across_files(write: Write) -> None:
    write("other.yaml", "services:\n  b: {extends: {file: compose.yaml, service: a}}\n")
    f = write("compose.yaml", "services:\n  a: {extends: {file: other.yaml, service: b}}\n")
    with pytest.raises(SpecError, match=r"extends cycle: compose.yaml:a → other.yaml:b → "
                                        r"compose.yaml:a"):
        load_file(f)


@pytest.mark.parametrize(("body", "message"), [
    ("web: {extends: nothere, image: x}", "service 'web' extends 'nothere', which is not defined"),
    ("web: {extends: {file: missing.yaml, service: a}}",
     "extends a service in 'missing.yaml', which does not exist"),
    ("web: {extends: {service: a, mode: x}, image: x}\n  a: {image: y}",
     "extends takes only service and file"),
    ("web: {extends: [a], image: x}", "extends must be a service name or a mapping"),
])
def test_extends_errors(write: Write, body: str, message: str) -> None:
    f = write("compose.yaml", f"services:\n  {body}\n")
    with pytest.raises(SpecError, match=message) as info:
        load_file(f)
    assert info.value.location is not None and info.value.location.line == 2
