"""Helpers of the tests of examples/: the steps of an example's README, and the Debian
base images its steps bootstrap, made once per test session.

An example's README is its test script: every ```sh block in it, in order, is run
by bash in a copy of the example, so the test breaks when the README's steps do.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from stackd.roots import Roots
from support.hostpackages import require_command

VENV_BIN = Path(sys.executable).parent
_SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.M | re.S)


def readme_steps(readme: Path) -> str:
    """The README's ```sh blocks, in order, as one script."""
    blocks = _SH_BLOCK.findall(readme.read_text())
    assert blocks, f"{readme} shows no ```sh steps"
    return "".join(blocks)


def run_readme(readme: Path, cwd: Path, roots: Roots, timeout: float = 300,
               **env: str) -> subprocess.CompletedProcess[str]:
    """Run the README's steps with bash (-e: the first failing step fails them all; -x:
    each step is echoed, so a failure says which) and `stackd` on PATH."""
    script = "set -euxo pipefail\n" + readme_steps(readme)
    environ = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
               "STACKD_ROOT": str(roots.state), "STACKD_RUN": str(roots.run), **env}
    r = subprocess.run(["bash", "-c", script], cwd=cwd, env=environ, text=True,
                       capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, (f"the steps of {readme} failed (exit {r.returncode})\n"
                               f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}")
    return r


class BaseImages:
    """`stackd image bootstrap` once per package set and session, in a root of the
    session's own; each test loads the saved image into its own root (10 s instead of
    a minute of mmdebstrap). The loaded image keeps the label saying what built it, so
    the README's own bootstrap step finds it and reuses it. `start` builds in the
    background: the session starts every image its selected tests need at once, and
    mmdebstrap's downloads and dpkg runs overlap."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.roots = Roots(state=workdir / "state", run=workdir / "run").ensure()
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="bootstrap")
        self.builds: dict[tuple[str, ...], Future[Path]] = {}

    def start(self, packages: tuple[str, ...], tag: str) -> None:
        key = (tag, *sorted(packages))
        if key not in self.builds and shutil.which("mmdebstrap") is not None:
            out = self.workdir / f"image-{len(self.builds)}.tar"
            self.builds[key] = self.pool.submit(self._build, packages, tag, out)

    def archive(self, packages: tuple[str, ...], tag: str) -> Path:
        require_command("mmdebstrap", "mmdebstrap")
        self.start(packages, tag)
        return self.builds[(tag, *sorted(packages))].result()

    def _build(self, packages: tuple[str, ...], tag: str, out: Path) -> Path:
        env = {**os.environ, "STACKD_ROOT": str(self.roots.state),
               "STACKD_RUN": str(self.roots.run)}
        for argv in (["image", "bootstrap", "debian", "--include", ",".join(packages),
                      "-t", tag],
                     ["image", "save", tag, "-o", str(out)]):
            r = subprocess.run([sys.executable, "-m", "stackd", *argv], env=env,
                               capture_output=True, text=True, timeout=900,
                               stdin=subprocess.DEVNULL)
            assert r.returncode == 0, f"stackd {' '.join(argv)}: {r.stderr}"
        return out

    def load_into(self, roots: Roots, packages: tuple[str, ...], tag: str) -> None:
        from stackd.images import ImageStore

        ImageStore(roots).load(self.archive(packages, tag))

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
