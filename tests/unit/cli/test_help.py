"""`stackd --help` and every verb's help fit on a screen (80 columns, 40 lines) and end
with an example of that verb."""

from __future__ import annotations

import pytest

from stackd.cli.helpformat import SCREEN_LINES
from stackd.cli.main import VERBS, main


def help_of(argv: list[str], capsys: pytest.CaptureFixture[str],
            monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert all(len(line) <= 80 for line in out.splitlines()), out
    return out


@pytest.mark.parametrize("verb", list(VERBS))
def test_a_verbs_help_fits_on_a_screen_and_shows_an_example(
        verb: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    out = help_of([verb, "--help"], capsys, monkeypatch)
    assert len(out.splitlines()) <= SCREEN_LINES, f"{len(out.splitlines())} lines:\n{out}"
    assert "\nexample:\n" in out, (
        f"`stackd {verb} --help` shows no example: add one to EXAMPLES in "
        "stackd/cli/helpformat.py, or EXAMPLE = '...' in the verb's module")
    example = out.split("\nexample:\n", 1)[1]
    assert f"stackd {verb}" in example, example


def test_stackd_help_fits_lists_every_verb_and_shows_an_example(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    out = help_of(["--help"], capsys, monkeypatch)
    assert len(out.splitlines()) <= SCREEN_LINES, out
    listed = out.split("\nverbs:\n", 1)[1].split("\nexample:\n", 1)[0]
    words = {w for line in listed.splitlines() for w in line.split(":")[-1].split()}
    assert set(VERBS) <= words, set(VERBS) - words
    assert "stackd up" in out.split("\nexample:\n", 1)[1]


def test_image_bootstrap_help_fits_and_shows_an_example(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    out = help_of(["image", "bootstrap", "--help"], capsys, monkeypatch)
    assert len(out.splitlines()) <= SCREEN_LINES
    assert "stackd image bootstrap debian --include" in out
