"""The console's HTML from hostile daemon data: a log line, a service name or an event
message is text on the page, never markup; server-sent events carry it whole."""

from __future__ import annotations

import re

from stackd.ui import pages
from stackd.ui.charts import sparkline


def text(html: str) -> str:
    """What a reader sees: the markup gone."""
    return re.sub(r"<[^>]+>", "", html)


EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_log_lines_and_events_are_escaped() -> None:
    assert "<script" not in pages.log_line({"line": EVIL})
    row = pages.event_row({"time": 0.0, "type": "action", "container": EVIL,
                           "message": EVIL, "actor": EVIL})
    assert "<script" not in row and "<img" not in row
    assert "&lt;script&gt;" in row


def test_a_stack_page_escapes_names_and_hides_environment_values() -> None:
    described = {"services": [{"name": EVIL, "replicas": 1, "image": EVIL,
                               "depends_on": [], "definition": {}}],
                 "images": {EVIL: EVIL}}
    containers = [{"name": EVIL, "service": EVIL, "index": 1, "state": "running",
                   "health": None, "pid": 7, "ports": [EVIL], "started_at": 1.0}]
    html = pages.stack_fragment("demo", described, containers, [])
    assert "<script" not in html and "<img" not in html
    assert "▶ running" in text(html)  # health as a word and an icon

    shown = pages.redact({"environment": {"DB_PASSWORD": "hunter2"}, "image": "x"})
    assert shown == {"environment": {"DB_PASSWORD": pages.REDACTED}, "image": "x"}
    assert pages.redact({"environment": ["A=secret"]})["environment"] == [
        f"A={pages.REDACTED}"]


def test_health_words() -> None:
    assert pages.container_health({"state": "running", "health": "unhealthy"}) == "unhealthy"
    assert pages.container_health({"state": "exited", "health": "healthy"}) == "exited"
    # a crash loop is told from a stop, and makes its stack unhealthy
    looping = {"index": 1, "state": "exited", "restarting": True, "exit_code": 1}
    assert pages.container_health(looping) == "restarting"
    assert pages.stack_health([looping], 1) == "unhealthy"
    assert "↻" in pages.badge("restarting")
    rows = [{"index": 1, "state": "running", "health": "healthy"},
            {"index": 2, "state": "running", "health": None}]
    assert pages.service_counts(rows) == (2, 2)
    assert pages.stack_health(rows, 2) == "healthy"
    assert pages.stack_health(rows, 3) == "starting"  # one replica short
    assert pages.stack_health([{"index": 1, "state": "exited"}], 1) == "unhealthy"
    assert text(pages.badge("unhealthy")) == "✖ unhealthy"


def test_server_sent_event_framing() -> None:
    """Each line of the HTML is its own data: line, so a newline in a log line can't
    end the event early or forge another."""
    framed = pages.sse("log", "one\nevent: forged\ndata: x")
    assert framed == (b"event: log\ndata: one\ndata: event: forged\ndata: data: x\n\n")


def test_sparkline() -> None:
    svg = sparkline([0.0, 5.0, 10.0], label="CPU", unit="%")
    assert svg.startswith("<svg") and 'aria-label="CPU: 10.0 %"' in svg
    assert "0.0,38.0" in svg and "180.0,2.0" in svg  # the latest at the top right
    assert "<polyline" in sparkline([], label="x", unit="")


def source(**over: object) -> dict[str, object]:
    """A GitOps source's status as `GET /v1/gitops/sources` answers it."""
    base: dict[str, object] = {
        "name": "site", "repo": "https://user:***@example.invalid/site.git",
        "ref": "branch main", "path": ".", "status": "Synced", "suspended": False,
        "applied": {"sha": "a" * 40, "author_time": 1.0e9, "message": "first\nbody"},
        "head": {"sha": "a" * 40, "author_time": 1.0e9, "message": "first\nbody"},
        "revision": 1, "error": "", "reconcile_error": "", "drift": ""}
    return {**base, **over}


def test_gitops_sources_are_escaped_and_say_their_status_in_words() -> None:
    evil = source(name=EVIL, repo=EVIL, ref=EVIL, path=EVIL, status=EVIL, error=EVIL,
                  applied={"sha": EVIL, "author_time": 1.0, "message": EVIL},
                  head={"sha": "b" * 40, "author_time": 2.0, "message": EVIL})
    for html in (pages.gitops_fragment([evil]), pages.source_section(evil),
                 pages.stacks_fragment([{"project": EVIL, "phase": "active",
                                         "generation": 1}], [], {}, {EVIL: evil})):
        assert "<script" not in html and "<img" not in html, html
        assert "&lt;script&gt;" in html

    html = pages.gitops_fragment([source(), source(
        name="broken", status="Failed", error="compose.yaml:3:5: bad",
        head={"sha": "c" * 40, "author_time": 2.0e9, "message": "oops"})])
    seen = text(html)
    assert "✔ Synced" in seen and "✖ Failed" in seen  # a word and an icon
    assert "a" * 12 in seen and "a" * 13 not in seen  # the short id…
    assert f'title="{"a" * 40}"' in html  # …the full one on hover
    assert "newest: " + "c" * 12 in seen  # fetched, not applied
    assert "first" in seen and "body" not in seen  # the message's first line
    assert "compose.yaml:3:5: bad" in seen
    assert "user:***@example.invalid" in seen  # masked as the API gives it
    assert 'href="/actions/sync?source=broken"' in html

    section = pages.source_section(source())
    assert 'href="/actions/sync?source=site&amp;back=stack"' in section
    assert pages.source_section(None) == ""
    assert pages.source_brief(None) == "—"
    assert "No GitOps sources" in pages.gitops_fragment([])


def test_a_gitops_stacks_plan_is_its_next_sync() -> None:
    html = pages.plan_fragment({"commit": {"sha": "d" * 40, "message": EVIL},
                                "actions": [{"line": EVIL}], "revision": None})
    assert "<script" not in html and "<img" not in html
    assert "d" * 12 in text(html)
    up_to_date = pages.plan_fragment({"commit": {"sha": "d" * 40, "message": "m"},
                                      "actions": [], "revision": None})
    assert "Up to date: a sync would do nothing." in text(up_to_date)
    assert "Up to date: up would do nothing." in text(pages.plan_fragment({"actions": []}))


def test_a_sync_returns_only_to_pages_of_its_own() -> None:
    from stackd.ui.app import _back_to

    assert _back_to("site", "stack") == "/stacks/site"
    assert _back_to("site", "https://evil.example/") == "/gitops"
    assert _back_to("a/../b", "stack") == "/stacks/a%2F..%2Fb"
