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
