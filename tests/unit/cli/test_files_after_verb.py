"""`stackd up -f stack.yaml`: a stack verb takes -f/--file after it too, added to those
given before it (Compose's global option), where the verb's own flags leave it free."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackd.cli.main import STACK_VERBS, VERBS, main


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.chdir(tmp_path)  # no compose.yaml here: only -f names the files
    base = tmp_path / "stack.yaml"
    base.write_text("name: shop\nservices:\n  web:\n    image: web\n")
    extra = tmp_path / "extra.yaml"
    extra.write_text("services:\n  db:\n    image: postgres\n")
    return base, extra


def test_a_file_after_the_verb_is_read(files: tuple[Path, Path],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    base, _ = files
    assert main(["config", "--services", "-f", str(base)]) == 0
    assert capsys.readouterr().out == "web\n"


def test_files_before_and_after_the_verb_are_merged_in_order(
        files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    base, extra = files
    assert main(["-f", str(base), "config", "--services", "--file", str(extra)]) == 0
    assert capsys.readouterr().out == "db\nweb\n"
    assert main(["config", "-f", str(base), "-f", str(extra), "--format", "json"]) == 0
    assert '"name": "shop"' in capsys.readouterr().out  # the first file names the stack


def test_a_verb_whose_own_flag_is_f_keeps_it() -> None:
    import argparse

    from stackd.cli.main import _accept_files_after

    logs = argparse.ArgumentParser()
    logs.add_argument("-f", "--follow", action="store_true")
    _accept_files_after(logs)
    args = logs.parse_args(["-f"])
    assert args.follow is True and args.files_after is None
    build = argparse.ArgumentParser()
    build.add_argument("-f", "--file", dest="dockerfile")
    _accept_files_after(build)  # neither string is free: nothing added
    assert vars(build.parse_args(["-f", "Dockerfile.dev"])) == {"dockerfile": "Dockerfile.dev"}


def test_every_stack_verb_is_a_verb() -> None:
    assert STACK_VERBS.issubset(VERBS)
