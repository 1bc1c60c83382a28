"""Fixtures shared by every tier."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stackd.roots import Roots

# `no_leaks`; real etcd clusters for tests/cluster (plugins may only be named here)
pytest_plugins = ["support.leakcheck", "support.etcdcluster"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (run as root, as CI does)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Roots:
    """A private state root and run dir for one test, exported as STACKD_ROOT/STACKD_RUN."""
    r = Roots(state=tmp_path / "state", run=tmp_path / "run").ensure()
    monkeypatch.setenv("STACKD_ROOT", str(r.state))
    monkeypatch.setenv("STACKD_RUN", str(r.run))
    return r
