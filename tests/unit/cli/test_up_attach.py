"""`up` without -d follows the logs of the services without `attach: false`."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from stackd.cli.cmd_up import attached


def _args(tmp_path: Path, text: str, *services: str) -> argparse.Namespace:
    (tmp_path / "compose.yaml").write_text(text)
    return argparse.Namespace(files=[str(tmp_path / "compose.yaml")], project_name="p",
                              project_directory=None, env_files=None, profiles=None,
                              services=list(services))


def test_attach_false_services_are_not_followed(tmp_path: Path) -> None:
    args = _args(tmp_path, "services:\n  web: {image: x}\n  db: {image: y, attach: false}\n"
                 "  cache: {image: z}\n")
    assert attached(args) == ["cache", "web"]


def test_all_attached_means_every_service(tmp_path: Path) -> None:
    assert attached(_args(tmp_path, "services:\n  web: {image: x}\n")) is None


def test_none_attached_and_named_services(tmp_path: Path) -> None:
    text = "services:\n  web: {image: x, attach: false}\n"
    assert attached(_args(tmp_path, text)) == []
    # Services named on the command line are followed, as Compose does.
    assert attached(_args(tmp_path, text, "web")) == ["web"]


@pytest.mark.parametrize("files", [["-"]])
def test_stdin_stack_follows_every_service(tmp_path: Path, files: list[str]) -> None:
    args = _args(tmp_path, "services: {}\n")
    args.files = files
    assert attached(args) is None


def test_attach_dependencies_follows_what_the_named_services_need(tmp_path: Path) -> None:
    text = ("services:\n  web: {image: x, depends_on: [api]}\n"
            "  api: {image: x, depends_on: [db]}\n  db: {image: x}\n  other: {image: x}\n")
    assert attached(_args(tmp_path, text, "web")) == ["web"]
    args = _args(tmp_path, text, "web")
    args.attach_dependencies = True
    assert attached(args) == ["api", "db", "web"]
    args.no_attach = ["db"]
    assert attached(args) == ["api", "web"]
