"""`up --wait`'s polling (stackd.cli.wait.wait_ready) against a scripted daemon: the
answers of GET /v1/stacks and GET /v1/containers, one look after another."""

from __future__ import annotations

from typing import Any

import pytest

from stackd.cli import wait
from stackd.errors import NotReadyError


class ScriptedDaemon:
    """Answers each poll with the next of `looks` (containers, rollback text), the last
    one for ever."""

    def __init__(self, *looks: tuple[list[dict[str, Any]], str]) -> None:
        self.looks = list(looks)
        self.polls = 0

    def get(self, path: str, **params: Any) -> Any:
        rows, rollback = self.looks[min(self.polls, len(self.looks) - 1)]
        if path == "/v1/stacks":
            return [{"project": "shop", "rollback": rollback}]
        assert path == "/v1/containers" and params == {"project": "shop", "all": True}
        self.polls += 1
        return rows


def db(health: str) -> list[dict[str, Any]]:
    return [{"service": "db", "name": "shop-db-1", "state": "running", "health": health}]


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wait, "POLL", 0.01)


def test_returns_once_every_service_is_healthy() -> None:
    daemon = ScriptedDaemon((db("starting"), ""), (db("starting"), ""), (db("healthy"), ""))
    wait.wait_ready(daemon, "shop", [], timeout=None)
    assert daemon.polls == 3


def test_a_revision_rolled_back_by_a_failed_update_fails_the_wait() -> None:
    why = "revision 3 rolled back to revision 2 (now revision 4): batch 1/1 failed"
    with pytest.raises(NotReadyError, match="shop: revision 3 rolled back"):
        wait.wait_ready(ScriptedDaemon((db("healthy"), why)), "shop", [], timeout=None)


def test_the_timeout_names_what_is_not_ready() -> None:
    with pytest.raises(NotReadyError,
                       match=r"not ready after --wait-timeout 0.05s: db \(starting\)"):
        wait.wait_ready(ScriptedDaemon((db("starting"), "")), "shop", [], timeout=0.05)
