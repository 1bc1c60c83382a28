"""`stackd ps` parses its plain forms without argparse; it must agree with argparse."""

from __future__ import annotations

import argparse

import pytest

from stackd.cli import cmd_ps

FIELDS = ("all", "format", "quiet", "all_projects", "services", "list_services", "status",
          "filter")


def by_argparse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    cmd_ps.add_arguments(p)
    return p.parse_args(argv)


@pytest.mark.parametrize("argv", [
    [], ["-a"], ["--all"], ["-q"], ["--quiet", "-a"], ["--format", "json"],
    ["--format=json"], ["--format", "table", "web"], ["--all-projects"],
    ["web", "db", "-a"], ["-a", "web", "db", "--format", "json"], ["--services"],
    ["-a", "--services", "web"],
])
def test_fast_parse_equals_argparse(argv: list[str]):
    fast = cmd_ps.fast_args(argv)
    assert fast is not None
    slow = by_argparse(argv)
    assert {f: getattr(fast, f) for f in FIELDS} == {f: getattr(slow, f) for f in FIELDS}


@pytest.mark.parametrize("argv", [
    ["-h"], ["--help"], ["--format", "yaml"], ["--format"], ["-aq"], ["--frobnicate"],
    ["web", "-a", "db"],  # argparse refuses a second run of SERVICEs; let it say so
    ["--status", "running"], ["--filter", "status=exited"],
])
def test_anything_else_goes_to_argparse(argv: list[str]):
    assert cmd_ps.fast_args(argv) is None
