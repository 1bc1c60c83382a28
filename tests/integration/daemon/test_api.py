"""Each endpoint of the daemon's API that needs no containers, over the real socket."""

from __future__ import annotations

import json
import queue
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


def test_events_history_and_follow(daemon, tmp_path) -> None:
    with daemon.client() as c:
        past = list(c.stream("GET", "/v1/events", params={"follow": False}))
    assert [e["type"] for e in past] == ["daemon"]
    assert "started" in past[0]["message"]

    # A follower without a cursor gets only what is published after it subscribed.
    got: queue.Queue[dict] = queue.Queue()

    def follow() -> None:
        with daemon.client() as c:
            for e in c.stream("GET", "/v1/events", params={"follow": True}):
                got.put(e)
                return  # the first is all the test looks at

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    # When the stream is subscribed is not visible from here: submit a stack (which
    # publishes an "apply" event) until the follower sees one, 10 tries at most.
    empty = {"source": {"files": ["-"], "content": "name: evt\nservices: {}\n",
                        "cwd": str(tmp_path)}}
    seen: list[dict] = []
    with daemon.client() as c:
        for _ in range(10):
            c.post("/v1/stacks/apply", empty, stream=False)
            try:
                seen.append(got.get(timeout=1))
                break
            except queue.Empty:
                continue
    assert seen, "the follower saw no event published after it subscribed"
    follower.join(5)
    assert seen[0]["type"] == "apply" and seen[0]["project"] == "evt"
    assert seen[0]["seq"] > past[-1]["seq"]


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


def test_graph_of_an_unknown_stack_and_a_bad_actor(daemon) -> None:
    """`GET /v1/stacks/{project}/graph` names a stack it lacks; `X-Stackd-Actor` is a
    short plain name or the request is refused, before anything is asked."""
    with raw_http(daemon.roots) as raw:
        r = raw.get("/v1/stacks/nothere/graph")
        assert r.status_code == 404 and "nothere" in r.json()["error"]["message"]
        r = raw.post("/v1/stacks/nothere/restart", json={},
                     headers={"X-Stackd-Actor": "a b\t<script>"})
        assert r.status_code == 422
        past = [json.loads(line) for line in raw.get(
            "/v1/events", params={"follow": "false"}).text.splitlines()]
    assert all(e["type"] != "action" for e in past)
