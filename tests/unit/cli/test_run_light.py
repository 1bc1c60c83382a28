"""`stackd run IMAGE` is the command whose start-up is the figure (issue #20: `run --rm
IMG true` at most half of podman's): its CLI reads no stack, so it must not load the
stack model. Reading `--env-file` through spec.dotenv once loaded the whole spec
package with it — pydantic and the models, ~0.15 s of every `run` (80 -> 245 ms)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import stackd.spec

HEAVY = ("pydantic", "pydantic_core", "stackd.spec.model", "stackd.spec.loader")


def imported(tmp_path: Path, *args: str) -> set[str]:
    """The modules `stackd run …` loads, up to its refusal: no daemon may start."""
    env = {**os.environ, "STACKD_ROOT": str(tmp_path / "state"),
           "STACKD_RUN": str(tmp_path / "run"), "STACKD_NO_AUTOSTART": "1"}
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "stackd", "run", *args],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0, "no daemon runs here: the run must be refused"
    return {line.rsplit("|", 1)[1].strip() for line in r.stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


@pytest.mark.parametrize("extra", [(), ("--env-file", "vars.env", "-e", "B=2")],
                         ids=["plain", "env-file"])
def test_run_of_an_image_loads_no_stack_model(tmp_path: Path, extra: tuple[str, ...]) -> None:
    (tmp_path / "vars.env").write_text("A=1\n")
    modules = imported(tmp_path, "--rm", *extra, "busybox:latest", "true")
    assert "stackd.cli.client" in modules  # as far as asking the daemon
    assert not [m for m in HEAVY if m in modules]
    # The env file's parser (and yaml, which the spec's interpolation brings) only
    # for a run that has one.
    assert ("stackd.spec.dotenv" in modules) == bool(extra)
    assert ("yaml" in modules) == bool(extra)


def test_the_spec_package_still_names_its_public_api() -> None:
    for name in stackd.spec.__all__:
        assert getattr(stackd.spec, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        stackd.spec.nothing  # noqa: B018
