"""Docker's `--format` templates as scripts use them (cli/goformat.py)."""

from __future__ import annotations

import re

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
    assert render("{{json .}}", ROWS[:1]) == (  # compact, as Go's encoder writes it
        '{"Name":"shop-web-1","Status":"Up 2 minutes","ExitCode":0,"Ports":""}\n')


@pytest.mark.parametrize(("template", "message"), [
    ("{{.Nmae}}", "there is no field 'Nmae'"),
    ("{{range .Ports}}x", "{{range .Ports}} has no {{end}}"),
    ("{{end}}", "{{end}} without an if, range or with"),
    ("{{.Name | shout}}", "there is no function 'shout'"),
    ("{{template \"x\"}}", "stackd's templates have no template"),
    ("{{index .Name}} {{printf \"%x\" .ExitCode}}", "printf's %x is not one stackd has"),
    ("{{join .Name}}", "join takes 2 values, not 1"),
    ("{{.Name .Status}}", ".Status follows a value"),
    ("{{(index .Name}}", "a ( without its )"),
    ("{{.Name", "a {{ without its }}"),
    ("{{$x}}", "$x is not set"),
    ("{{$.Nmae}}", "there is no field 'Nmae'"),
])
def test_what_is_not_filled_in_is_refused_naming_it(template: str, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
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
        '["A=1","B=2"]||\n')
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
    # A field of Docker's the image does not set reads as unset; a misspelt one is
    # refused (it printed nothing).
    assert render("[{{.Config.Healthcheck}}][{{.Config.Entrypoint}}]", [doc]) == "[][]\n"
    with pytest.raises(UsageError, match=r"no field 'Entrypiont' in \.Config"):
        render("{{.Config.Entrypiont}}", [doc])


# Docker's `inspect -f` templates, as scripts and docs write them: stackd refused every
# one with a range, a function or a pipe ("is not a field stackd fills in").
CONTAINER = {
    "Name": "/shop-web-1",
    "State": {"Status": "running", "Running": True, "ExitCode": 0,
              "Health": {"Status": "healthy"}},
    "Config": {"Labels": {"io.stackd.service": "web", "tier": "front"},
               "Env": ["A=1", "B=2"]},
    "NetworkSettings": {
        "Networks": {"shop_default": {"IPAddress": "10.0.0.2", "Aliases": ["web"]},
                     "shop_back": {"IPAddress": "10.0.1.2", "Aliases": []}},
        "Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}], "9/udp": None}},
    "Mounts": [],
}


@pytest.mark.parametrize(("template", "printed"), [
    ("{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "10.0.1.210.0.0.2"),
    ("{{range $name, $n := .NetworkSettings.Networks}}{{$name}}={{$n.IPAddress}} {{end}}",
     "shop_back=10.0.1.2 shop_default=10.0.0.2 "),
    ('{{(index (index .NetworkSettings.Ports "80/tcp") 0).HostPort}}', "8080"),
    ('{{index .Config.Labels "io.stackd.service"}}', "web"),
    ("{{.State.Health.Status}} {{.State.Running}}", "healthy true"),
    ('{{if eq .State.Status "running"}}up{{else}}down{{end}}', "up"),
    ('{{if .State.ExitCode}}failed{{else if .State.Running}}running{{end}}', "running"),
    ("{{with .State.Health}}{{.Status}}{{end}}", "healthy"),
    ("{{range .Mounts}}{{.Source}}{{else}}none{{end}}", "none"),
    ('{{join .Config.Env ","}} {{len .Config.Env}}', "A=1,B=2 2"),
    ("{{.Name | upper}} {{lower \"AB\"}}", "/SHOP-WEB-1 ab"),
    ('{{printf "%s has %d" .Name (len .Config.Env)}}', "/shop-web-1 has 2"),
    ("{{- range $p, $b := .NetworkSettings.Ports -}}\n  {{ $p }}:{{ len $b }}\n{{- end }}",
     "80/tcp:19/udp:0"),
    ('{{json .NetworkSettings.Ports}}',
     '{"80/tcp":[{"HostIp":"0.0.0.0","HostPort":"8080"}],"9/udp":null}'),
    ('{{range .NetworkSettings.Networks}}{{$.Name}} {{end}}', "/shop-web-1 /shop-web-1 "),
    ("{{$n := .Name}}{{$n}}", "/shop-web-1"),
    ('{{index .Config.Labels "nope"}}|{{.Config.Labels.tier}}', "|front"),
    ("{{/* a comment */}}{{not .State.Running}} {{and 1 0}} {{or 0 \"x\"}}", "false 0 x"),
])
def test_go_templates_as_inspect_f_takes_them(template: str, printed: str) -> None:
    assert render(template, [CONTAINER]) == printed + "\n"


def test_a_template_out_of_range_or_over_a_scalar_says_so() -> None:
    with pytest.raises(UsageError, match="index 3 is out of range: there are 2"):
        render("{{index .Config.Env 3}}", [CONTAINER])
    with pytest.raises(UsageError, match="neither a list nor a map"):
        render("{{range .Name}}x{{end}}", [CONTAINER])
    with pytest.raises(UsageError, match="cannot compare"):
        render('{{if lt .Name 3}}x{{end}}', [CONTAINER])


def test_a_template_nested_past_pythons_stack_is_refused_not_a_traceback() -> None:
    for template in ("{{" + "(" * 3000 + ".Name" + ")" * 3000 + "}}",
                     "{{if .Name}}" * 2000 + "x" + "{{end}}" * 2000):
        with pytest.raises(UsageError, match="nests too deeply"):
            render(template, [CONTAINER])


def test_values_an_image_chose_print_without_control_sequences() -> None:
    row = {"Config": {"Env": ["A=\x1b[2J"]}}
    assert "\x1b" not in render("{{range .Config.Env}}{{.}}{{end}} {{index .Config.Env 0}}",
                                [row])
