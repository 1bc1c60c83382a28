"""`stackd build` beside a stack file: which services' images it builds."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from stackd.cli.cmd_build import _stack_jobs
from stackd.errors import UsageError

STACK = """\
services:
  web: {build: ./web, depends_on: [api]}
  api: {build: ./api, depends_on: [db, cache]}
  db: {image: postgres}
  cache: {build: ./cache}
  tool: {build: ./tool}
"""


def _args(tmp_path: Path, *targets: str, deps: bool = False) -> argparse.Namespace:
    (tmp_path / "compose.yaml").write_text(STACK)
    return argparse.Namespace(
        files=[str(tmp_path / "compose.yaml")], project_name="p", project_directory=None,
        env_files=None, profiles=None, targets=list(targets), with_dependencies=deps,
        build_arg=[], tag=[], dockerfile=None, target=None)


def _built(tmp_path: Path, *targets: str, deps: bool = False) -> list[str]:
    return sorted(Path(j.context).name for j in _stack_jobs(_args(tmp_path, *targets,
                                                                  deps=deps)))


def test_with_dependencies_builds_what_the_named_services_need(tmp_path: Path) -> None:
    assert _built(tmp_path) == ["api", "cache", "tool", "web"]
    assert _built(tmp_path, "web") == ["web"]
    assert _built(tmp_path, "web", deps=True) == ["api", "cache", "web"]
    # db builds nothing itself; what it needs is nothing either.
    assert _built(tmp_path, "db", deps=True) == []
    with pytest.raises(UsageError, match="db: not a directory, nor a service"):
        _built(tmp_path, "db")
    with pytest.raises(UsageError, match="nosuch: not a directory"):
        _built(tmp_path, "nosuch", deps=True)
