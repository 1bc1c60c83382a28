"""A container row of the API (`GET /v1/containers`) in Docker's words, for every
reader that shows one (`ps`, `ls`, the web console): the rule in one place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def docker_state(row: Mapping[str, Any]) -> str:
    """created, running, paused, restarting, exited: stackd's state with two told
    apart as Docker tells them — a paused container (running, frozen) and an exited
    one its restart policy will start again (Docker's word for a crash loop)."""
    state = str(row.get("state") or "")
    if state == "running" and row.get("paused"):
        return "paused"
    if state == "exited" and row.get("restarting"):
        return "restarting"
    return state
