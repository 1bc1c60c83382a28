"""`events --json` carries the keys `docker compose events --json` gives a script
(`action`, `id`, `attributes`) beside stackd's own: a script's
`jq 'select(.action == "die")'` found nothing, and a health change's status was only
in the message."""

from __future__ import annotations

from typing import Any

import pytest

from stackd.cli.cmd_events import with_compose_keys


def _e(type_: str, **kw: Any) -> dict[str, Any]:
    return {"seq": 1, "time": 1.0, "type": type_, "project": "p", "message": "m", **kw}


@pytest.mark.parametrize(("event", "action", "name", "attributes"), [
    (_e("start", container="p-app-1", slot="app-1"), "start", "p-app-1", {}),
    (_e("die", container="p-job-1", slot="job-1", attrs={"exitCode": "3"}), "die",
     "p-job-1", {"exitCode": "3"}),
    (_e("health", container="p-app-1", slot="app-1", message="unhealthy: boom",
        attrs={"healthStatus": "unhealthy"}), "health_status: unhealthy", "p-app-1",
     {"healthStatus": "unhealthy"}),
    (_e("oom", container="p-app-1", slot="app-1"), "oom", "p-app-1", {}),
    (_e("restart", container="p-app-1", slot="app-1"), "restart", "p-app-1", {}),
    (_e("remove", container="p-app-1", slot="app-1"), "destroy", "p-app-1", {}),
    (_e("progress", container="app-1", slot="app-1", verb="create", state="done"), "create",
     "p-app-1", {}),
    (_e("progress", container="app-1", slot="app-1", verb="create", state="working"),
     "progress", "p-app-1", {}),
    (_e("progress", container="app-1", slot="app-1", verb="stop", state="done"), "stop",
     "p-app-1", {}),
    (_e("progress", container="network p_default", verb="create", state="done"), "progress",
     "", {}),
    (_e("remove", attrs={"scope": "stack"}), "remove", "", {"scope": "stack"}),
    (_e("apply", attrs={"generation": "1"}), "apply", "", {"generation": "1"}),
], ids=["start", "die", "health", "oom", "restart", "destroy", "create", "create-working",
        "stop", "network", "stack-removed", "apply"])
def test_compose_keys(event: dict[str, Any], action: str, name: str,
                      attributes: dict[str, str]) -> None:
    out = with_compose_keys(event)
    assert {k: out[k] for k in event} == event  # stackd's own keys, as they were
    assert out["action"] == action and out["id"] == name
    assert out["attributes"] == ({"name": name} if name else {}) | attributes
