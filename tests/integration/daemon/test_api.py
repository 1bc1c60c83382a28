"""Each endpoint of the daemon's API that needs no containers, over the real socket."""

from __future__ import annotations

import json
import threading

import pytest
from daemon_helpers import raw_http

from stackd.errors import NotFoundError, UsageError

pytestmark = pytest.mark.root


def test_version_and_ping(daemon) -> None:
    with daemon.client() as c:
        v = c.get("/v1/version")
        assert v["pid"] == daemon.pid
        assert v["root_id"] == daemon.roots.id
        assert v["api"] == "v1"
        assert c.get("/v1/ping") == {"status": "ok"}


def test_openapi_document_lists_the_api(daemon) -> None:
    with daemon.client() as c:
        doc = c.get("/openapi.json")
    assert doc["info"]["title"] == "stackd"
    for path in ("/v1/stacks/apply", "/v1/stacks/plan", "/v1/stacks/{project}",
                 "/v1/containers", "/v1/containers/{name}/logs", "/v1/containers/{name}/exec",
                 "/v1/events", "/v1/networks", "/v1/volumes", "/v1/images", "/metrics"):
        assert path in doc["paths"], path


def test_no_stacks_on_a_fresh_daemon(daemon) -> None:
    with daemon.client() as c:
        assert c.get("/v1/stacks") == []


def test_metrics_are_prometheus_text(daemon) -> None:
    with daemon.client() as c, raw_http(daemon.roots) as raw:
        c.get("/v1/stacks")
        raw.get("/v1/nowhere")
        r = raw.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.text
    assert "# TYPE stackd_reconcile_duration_seconds histogram" in text
    assert 'stackd_api_requests_total{code="200",method="GET",route="/v1/stacks"} 1.0' in text
    assert 'stackd_api_requests_total{code="404",method="GET",route="unmatched"} 1.0' in text
    assert 'stackd_events_total{type="daemon"} 1.0' in text


def test_events_history_and_follow(daemon) -> None:
    with daemon.client() as c:
        past = list(c.stream("GET", "/v1/events", params={"follow": False}))
        assert [e["type"] for e in past] == ["daemon"]
        assert "started" in past[0]["message"]

        # A follower sees events published after it subscribed: a failing removal of an
        # unknown stack publishes nothing, so use the history cursor instead.
        got: list[dict] = []

        def follow() -> None:
            for e in c.stream("GET", "/v1/events", params={"since": 0}):
                got.append(e)
                return

        t = threading.Thread(target=follow, daemon=True)
        t.start()
        t.join(10)
        assert got and got[0]["seq"] == past[0]["seq"]


def test_errors_come_back_typed(daemon) -> None:
    with daemon.client() as c:
        with pytest.raises(NotFoundError) as err:
            c.request("DELETE", "/v1/stacks/nosuch")
        assert "no stack named 'nosuch'" in str(err.value)
        with pytest.raises(UsageError) as err:
            c.request("DELETE", "/v1/stacks/Not A Name")
        assert "invalid request" in str(err.value)
        with pytest.raises(UsageError):
            c.post("/v1/stacks/apply", {"source": {"files": "not-a-list"}})


def test_raw_error_bodies(daemon) -> None:
    with raw_http(daemon.roots) as raw:
        r = raw.post("/v1/stacks/apply", content=b"{not json")
        assert r.status_code == 422
        assert json.loads(r.text)["error"]["type"] == "UsageError"
        r = raw.get("/v1/containers/x/logs", params={"tail": "-1"})
        assert r.status_code == 422
