"""A load's probes (spec/probes.py) say "unchanged" exactly while a new load of the
same options would come out the same: every file it read holds the same bytes, and
every file it looked for and did not find (an override file, `.env`, an optional
env_file, a compose file in a parent directory) is still not there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stackd.spec import LoadOptions, load
from stackd.spec.probes import Probes

STACK = "services:\n  web:\n    image: demo\n    environment:\n      V: ${V:-none}\n"


def loaded(tmp_path: Path, **options: object) -> tuple[Probes, str]:
    probes = Probes()
    stack = load(LoadOptions(cwd=tmp_path, environ={}, probes=probes, **options))  # type: ignore[arg-type]
    return probes, stack.services["web"].environment.get("V") or ""


def test_nothing_changed_is_unchanged_and_a_load_again_agrees(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(STACK)
    probes, value = loaded(tmp_path)
    assert value == "none"
    assert probes.unchanged()
    again, _ = loaded(tmp_path)
    assert again.answers == probes.answers


@pytest.mark.parametrize("change", [
    "edit the stack file",
    "an override file appears",
    "a .env appears",
    "the .env changes",
    "an optional env_file appears",
    "a compose file of a parent directory is found instead",
])
def test_each_change_a_load_would_see_is_seen(tmp_path: Path, change: str) -> None:
    project = tmp_path / "outer" / "project"
    project.mkdir(parents=True)
    stack = STACK + "    env_file:\n      - path: ./extra.env\n        required: false\n"
    (project / "compose.yaml").write_text(stack)
    (project / ".env").write_text("V=one\n")
    cwd = project / "src"
    cwd.mkdir()
    if change == "a compose file of a parent directory is found instead":
        (project / "compose.yaml").unlink()
        (tmp_path / "outer" / "compose.yaml").write_text(STACK)
    probes, _ = loaded(cwd)

    if change == "edit the stack file":
        (project / "compose.yaml").write_text(stack.replace("demo", "other"))
    elif change == "an override file appears":
        (project / "compose.override.yaml").write_text("services:\n  web:\n    init: true\n")
    elif change == "a .env appears":
        (project / ".env").unlink()
        probes, _ = loaded(cwd)
        (project / ".env").write_text("V=two\n")
    elif change == "the .env changes":
        (project / ".env").write_text("V=two\n")
    elif change == "an optional env_file appears":
        (project / "extra.env").write_text("W=1\n")
    else:
        (cwd / "compose.yaml").write_text(STACK)  # nearer than the parent's
    assert not probes.unchanged(), change
    assert loaded(cwd)[0].answers != probes.answers


def test_a_symlinked_extends_file_retargeted_is_a_change(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("services:\n  base:\n    image: a\n")
    (tmp_path / "b.yaml").write_text("services:\n  base:\n    image: b\n")
    os.symlink("a.yaml", tmp_path / "base.yaml")
    (tmp_path / "compose.yaml").write_text(
        "services:\n  web:\n    extends:\n      file: base.yaml\n      service: base\n")
    probes = Probes()
    stack = load(LoadOptions(cwd=tmp_path, environ={}, probes=probes))
    assert stack.services["web"].image == "a"
    assert probes.unchanged()
    (tmp_path / "base.yaml").unlink()
    os.symlink("b.yaml", tmp_path / "base.yaml")
    assert not probes.unchanged()


def test_text_reads_as_text_mode_reads_it(tmp_path: Path) -> None:
    """Windows and old Mac line ends are read as a text-mode open reads them (what the
    loader did before probes): a quoted multi-line .env value keeps no stray CR."""
    path = tmp_path / "crlf.env"
    path.write_bytes(b'V="a\r\nb\rc"\r\nW=1\r\n')
    assert Probes().read_text(path) == path.read_text(encoding="utf-8") == 'V="a\nb\nc"\nW=1\n'
