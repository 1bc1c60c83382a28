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
