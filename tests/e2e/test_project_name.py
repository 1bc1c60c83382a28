"""The CLI's cheap project-name reading (`ps`, `logs`…) agrees with the full loader,
and steps aside (None) where it could not be sure."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from stackd.cli.stackref import project_of, quick_project_name
from stackd.spec import LoadOptions, load

SERVICE = "services:\n  a:\n    image: busybox\n"


def args(**kw: object) -> argparse.Namespace:
    return argparse.Namespace(**{"files": None, "project_directory": None,
                                 "env_files": None, "profiles": None,
                                 "project_name": None, **kw})


def full(a: argparse.Namespace) -> str:
    return load(LoadOptions(files=a.files, project_directory=a.project_directory,
                            on_warning=lambda _w: None)).name


@pytest.mark.parametrize(("files", "expected"), [
    ({"compose.yaml": "name: shop\n" + SERVICE}, "shop"),
    ({"compose.yaml": "name: 'Shop_1'  # the shop\n" + SERVICE}, "shop_1"),
    ({"compose.yaml": SERVICE}, "mydir"),
    ({"compose.yaml": "name: shop\n" + SERVICE,
      "compose.override.yaml": "name: other\n"}, "other"),
    ({"docker-compose.yml": SERVICE + "    environment:\n      name: x\n"}, "mydir"),
])
def test_quick_name_is_the_loaders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   files: dict[str, str], expected: str) -> None:
    d = tmp_path / "My Dir"
    d.mkdir()
    for name, text in files.items():
        (d / name).write_text(text)
    monkeypatch.chdir(d)
    monkeypatch.delenv("STACKD_PROJECT_NAME", raising=False)
    assert quick_project_name(args()) == expected
    assert full(args()) == expected
    (d / "sub").mkdir()
    monkeypatch.chdir(d / "sub")  # discovered in a parent, as the loader does
    assert quick_project_name(args()) == expected


@pytest.mark.parametrize("text", [
    "name: ${PROJECT:-shop}\n" + SERVICE,
    "name: >-\n  shop\n" + SERVICE,
    "{name: shop, services: {a: {image: busybox}}}\n",
])
def test_quick_name_defers_to_the_loader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         text: str) -> None:
    (tmp_path / "compose.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STACKD_PROJECT_NAME", raising=False)
    assert quick_project_name(args()) is None
    assert project_of(args()) == full(args())


def test_a_dotenv_or_the_variable_defers(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "compose.yaml").write_text("name: shop\n" + SERVICE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STACKD_PROJECT_NAME", "other")
    assert quick_project_name(args()) is None
    assert project_of(args()) == "other"
    monkeypatch.delenv("STACKD_PROJECT_NAME")
    (tmp_path / ".env").write_text("STACKD_PROJECT_NAME=fromenv\n")
    assert quick_project_name(args()) is None
    assert project_of(args()) == "fromenv"


def test_a_device_or_a_name_too_long_is_said_not_read(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """`-f /dev/zero ps` read the device until the memory ran out (the quick reading
    and the loader alike); `--project-directory` with a 300-byte name was an OSError
    traceback."""
    from stackd.errors import SpecError, UsageError
    from stackd.spec.probes import MAX_TEXT_BYTES

    monkeypatch.chdir(tmp_path)
    assert quick_project_name(args(files=["/dev/zero"])) is None
    with pytest.raises(UsageError, match="is not a regular file"):
        project_of(args(files=["/dev/zero"]))
    assert quick_project_name(args(project_directory="a" * 300)) is None
    with pytest.raises(UsageError, match="does not exist"):
        project_of(args(project_directory="a" * 300))
    (tmp_path / "compose.yaml").write_text(SERVICE)
    with pytest.raises(SpecError, match=r"env file '/dev/zero'.*a device, not a file"):
        load(LoadOptions(cwd=tmp_path, env_files=["/dev/zero"], environ={}))
    big = tmp_path / "big.yaml"
    with big.open("wb") as f:
        f.write(b"# " + b"x" * MAX_TEXT_BYTES + b"\n" + SERVICE.encode())
    assert quick_project_name(args(files=[str(big)])) is None
    with pytest.raises(SpecError, match=r"big\.yaml: larger than 16 MiB"):
        load(LoadOptions(cwd=tmp_path, files=[str(big)], environ={}))
