"""Docker's `--format` templates as scripts use them (cli/goformat.py)."""

from __future__ import annotations

import pytest

from stackd.cli.goformat import render
from stackd.errors import UsageError

ROWS = [{"Name": "shop-web-1", "Status": "Up 2 minutes", "ExitCode": 0, "Ports": ""},
        {"Name": "shop-db-1", "Status": "Exited (3)", "ExitCode": 3, "Ports": "5432"}]


def test_fields_one_line_per_row() -> None:
    assert render("{{.Name}} {{ .ExitCode }}", ROWS) == "shop-web-1 0\nshop-db-1 3\n"
    assert render("{{.Name}}\\t{{.Ports}}", ROWS) == "shop-web-1\t\nshop-db-1\t5432\n"


def test_table_has_a_header_and_aligned_columns() -> None:
    assert render("table {{.Name}}\\t{{.Status}}", ROWS) == (
        "NAME         STATUS\n"
        "shop-web-1   Up 2 minutes\n"
        "shop-db-1    Exited (3)\n")


def test_json() -> None:
    assert render("{{json .ExitCode}}", ROWS) == "0\n3\n"
    assert render("{{json .}}", ROWS[:1]) == (
        '{"Name": "shop-web-1", "Status": "Up 2 minutes", "ExitCode": 0, "Ports": ""}\n')


@pytest.mark.parametrize(("template", "message"), [
    ("{{.Nmae}}", "there is no field 'Nmae'"),
    ("{{range .Ports}}x{{end}}", "{{range .Ports}} is not a field stackd fills in"),
    ("{{.Name | upper}}", "is not a field stackd fills in"),
])
def test_what_is_not_filled_in_is_refused_naming_it(template: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("{", r"\{").replace("|", r"\|")):
        render(template, ROWS)


def test_a_header_docker_names_otherwise_is_dockers() -> None:
    rows = [{"Name": "shop-web-1", "RunningFor": "2 minutes ago", "CreatedAt": "x"}]
    header = render("table {{.Name}}\t{{.RunningFor}}\t{{.CreatedAt}}", rows).splitlines()[0]
    assert header.split() == ["NAME", "CREATED", "CREATED", "AT"], header


def test_nested_fields_print_as_go_prints_them() -> None:
    """`docker image inspect -f '{{.Config.Env}}'`: stackd took no nested field, and
    printed a list as Python's repr."""
    row = {"Id": "sha256:ab", "Config": {"Env": ["A=1", "B=2"], "Labels": {"z": "1", "a": "2"},
                                         "Tty": False, "Cmd": None}}
    assert render("{{.Config.Env}} {{.Config.Labels}} {{.Config.Tty}}", [row]) == (
        "[A=1 B=2] map[a:2 z:1] false\n")
    assert render("{{json .Config.Env}}|{{.Config.Cmd}}|{{.Config.Nope}}", [row]) == (
        '["A=1", "B=2"]||\n')
    assert render("table {{.Id}}\\t{{.Config.Env}}", [row]).splitlines() == [
        "ID          ENV", "sha256:ab   [A=1 B=2]"]
    with pytest.raises(UsageError, match="there is no field 'Nope'"):
        render("{{.Nope.Env}}", [row])


def test_an_images_docker_fields() -> None:
    from stackd.cli.image_view import docker_image
    from stackd.images.models import Image, ImageConfig

    img = Image(id="sha256:" + "c" * 64, digest="sha256:" + "d" * 64,
                references=("docker.io/library/redis:7", "registry.local:5000/app:1"),
                config=ImageConfig(env=("PATH=/bin",), cmd=("redis-server",),
                                   exposed_ports=("6379/tcp",)),
                layer_dirs=(), size=10, created="2026-01-01T00:00:00Z")
    doc = docker_image(img)
    assert doc["RepoTags"] == ["redis:7", "registry.local:5000/app:1"]
    assert doc["RepoDigests"] == [f"redis@{img.digest}", f"registry.local:5000/app@{img.digest}"]
    assert render("{{.Config.Env}} {{.Config.Cmd}} {{.Config.ExposedPorts}} {{.Config.User}}",
                  [doc]) == "[PATH=/bin] [redis-server] map[6379/tcp:map[]] \n"
