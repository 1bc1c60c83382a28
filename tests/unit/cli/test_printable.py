"""An image's command (and anything else a container wrote) reaches a table or a
template without a control sequence the user's terminal would act on."""

from __future__ import annotations

from stackd.cli.cmd_ps import command_text
from stackd.cli.cmd_ps import table as ps_table
from stackd.cli.goformat import render as render_template
from stackd.cli.table import render
from stackd.printable import quoted, shown

HOSTILE = ["sh", "-c", "\x1b]0;owned\x07\x1b[2J\x9b31m\x7f\nok"]


def test_control_characters_show_as_question_marks() -> None:
    assert shown("plain text … ü") == "plain text … ü"
    assert shown("\x1b[2J\x9b\x7f\n\t") == "?[2J????"


def test_quoted_escapes_them_as_gos_strconv_quote_does() -> None:
    assert quoted('say "hi" …') == '"say \\"hi\\" …"'
    assert quoted("\x1b[1m\x9b") == '"\\u001b[1m\\u009b"'


def test_no_table_passes_a_control_character_through() -> None:
    row = {"name": "p-web-1", "service": "web", "state": "running", "command": HOSTILE,
           "image": "busybox"}
    for text in (ps_table([row]), ps_table([row], trunc=False),
                 render(("A",), [["\x1b[31mred"]])):
        assert not any(c in text for c in "\x1b\x07\x9b\x7f"), repr(text)
    assert "\x1b" not in command_text(row, False) and "\\u001b" in command_text(row, False)


def test_no_template_passes_one_through_but_json_escapes_it() -> None:
    rows = [{"Platform": "linux/\x1b]0;owned\x07amd64", "Name": "x"}]
    assert render_template("{{.Platform}}", rows) == "linux/?]0;owned?amd64\n"
    assert "\x1b" not in render_template("{{json .}}", rows)
    assert "\x1b" not in render_template("table {{.Name}}\t{{.Platform}}", rows)
