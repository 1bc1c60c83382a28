"""Helpers of the GitOps tests: a real git repository to commit to, and waiting on a
source's status through the daemon's API."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

GIT_ENV = {"GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
           "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent"}


class Repo:
    """A working repository on branch main; `commit` writes files and commits them."""

    def __init__(self, path: Path) -> None:
        from support.hostpackages import require_command

        require_command("git", "git")
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.path, check=True, text=True,
                              capture_output=True, env={**os.environ, **GIT_ENV}).stdout

    def commit(self, message: str, files: dict[str, str | None]) -> str:
        for name, text in files.items():
            p = self.path / name
            if text is None:
                p.unlink()
            else:
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text(text)
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD").strip()


def source_status(roots: Any, name: str) -> dict[str, Any]:
    from stackd.cli.client import Client

    with Client(roots, autostart=False) as c:
        result: dict[str, Any] = c.get(f"/v1/gitops/sources/{name}")
        return result


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 30.0,
             every: float = 0.1) -> Any:
    """Poll `probe` until it returns something truthy; fail naming `what` and the last
    value it returned."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")


def wait_applied(roots: Any, name: str, sha: str, timeout: float = 30.0) -> dict[str, Any]:
    """Wait until `name` applied commit `sha` and is Synced."""
    def probe() -> dict[str, Any] | None:
        st = source_status(roots, name)
        applied = st["applied"] or {}
        return st if applied.get("sha") == sha and st["status"] == "Synced" else None
    result: dict[str, Any] = wait_for(f"{name} synced at {sha[:12]}", probe, timeout)
    return result
