"""The web console, seen the way a person uses it: in chromium, against a real daemon
running a small demo stack (a health-checked "db", a "web" that waits for it, a
"worker" that logs every second), on this test's own root."""

from __future__ import annotations

import json
import os
import signal
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from e2e_helpers import CLI, DEMO_IMAGE
from support.psrows import ps_rows
from support.ui import Console, click, shot, text_of, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow]

STACK = f"""\
name: demo
x-busybox: &busybox
  image: {DEMO_IMAGE}
  pull_policy: never
  stop_signal: SIGKILL
services:
  db:
    <<: *busybox
    command: ["sh", "-c",
              "mkdir -p /data && echo ready > /data/ready && exec httpd -f -p 5432 -h /data"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:5432/ready"]
      interval: 1s
      timeout: 2s
      retries: 20
  web:
    <<: *busybox
    command: ["sh", "-c",
              "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 80 -h /www"]
    depends_on:
      db: {{condition: service_healthy}}
    restart: always
  worker:
    <<: *busybox
    command: ["sh", "-c", "i=0; while true; do i=$$((i+1)); echo tick $$i; sleep 1; done"]
    depends_on: [db]
    restart: always
"""


def containers(cli: CLI) -> list[dict[str, Any]]:
    return ps_rows(cli("ps", "--format", "json").stdout)


def test_console_shows_the_stack_live_and_acts_on_it(cli: CLI, console: Console,
                                                      browser: Any) -> None:
    from selenium.webdriver.common.by import By

    (cli.cwd / "compose.yaml").write_text(STACK)
    cli("up", "-d")

    # Open the printed URL: signed in, the stack appears and turns healthy.
    browser.get(console.url)
    wait_for("the stacks page", lambda: "demo" in text_of(browser, "#stacks-table"))
    assert "token=" not in browser.current_url
    row = wait_for("demo healthy, 3/3 ready", lambda: (
        (t := text_of(browser, "#stacks-table")) and "3/3" in t and "healthy" in t and t))
    assert "✔ healthy" in row  # a word and an icon, not only a colour
    shot(browser, "stacks")

    # The stack's page: services, the dependency graph as SVG.
    click(browser, 'a[href="/stacks/demo"]')
    wait_for("the stack page", lambda: "Stack demo" in browser.title, driver=browser)
    svg = browser.find_element(By.CSS_SELECTOR, "#graph svg")
    graph_text = svg.text or svg.get_attribute("innerHTML")
    assert all(s in graph_text for s in ("db", "web", "worker"))
    assert "sha256:" in text_of(browser, "#services-table")  # image digests
    wait_for("the plan fragment", lambda: "Up to date" in text_of(browser, "#plan"))
    shot(browser, "stack")

    # Kill the worker from the shell by its PID: the page shows the restart, unreloaded.
    browser.execute_script("window.__notReloaded = true;")
    worker = next(c for c in containers(cli) if c["service"] == "worker")
    name, pid = worker["name"], worker["pid"]
    os.kill(pid, signal.SIGKILL)
    restarts = f'.restarts[data-container="{name}"]'
    wait_for("the restart shown", lambda: text_of(browser, restarts) == "1", driver=browser)
    wait_for("a new PID shown", lambda: text_of(
        browser, f'.pid[data-container="{name}"]') not in ("", "—", str(pid)))
    assert "exit" in browser.find_element(By.CSS_SELECTOR, restarts).find_element(
        By.XPATH, "..").text
    assert browser.execute_script("return window.__notReloaded === true;")

    # Scale the worker from the page, through the confirmation step; ps agrees.
    click(browser, 'a[href^="/actions/scale"][href*="service=worker"]')
    wait_for("the confirmation", lambda: "Confirm" in browser.title)
    shot(browser, "confirm-scale")
    field = browser.find_element(By.ID, "replicas")
    field.clear()
    field.send_keys("2")
    browser.find_element(By.ID, "confirm").click()
    wait_for("ps shows two workers", lambda: len(
        [c for c in containers(cli) if c["service"] == "worker"
         and c["state"] == "running"]) == 2, timeout=60)
    wait_for("the page shows 2/2 workers", lambda: text_of(
        browser, '.replicas[data-service="worker"]') == "2/2", driver=browser)
    events = [json.loads(line) for line in cli(
        "events", "--no-follow", "--json").stdout.splitlines()]
    assert any(e["type"] == "action" and e["actor"] == "ui" and e["verb"] == "scale"
               for e in events), events

    # Roll back to the revision before the scale, confirmed: one worker again.
    click(browser, 'a[href^="/actions/rollback"][href*="revision=1"]')
    wait_for("the rollback confirmation", lambda: "Confirm" in browser.title)
    browser.find_element(By.ID, "confirm").click()
    wait_for("ps shows one worker", lambda: len(
        [c for c in containers(cli) if c["service"] == "worker"]) == 1, timeout=60)
    wait_for("the page shows 1/1 workers", lambda: text_of(
        browser, '.replicas[data-service="worker"]') == "1/1", driver=browser)
    assert "rollback" in text_of(browser, "#history-table")
    assert "ui asked: rollback" in cli("events", "--no-follow").stdout

    # A container's page: a line its process writes appears live in the log.
    browser.get(f"{console.base}containers/{name}")
    wait_for("the log tail", lambda: "tick" in text_of(browser, "#log"))
    wait_for("the usage charts", lambda: browser.find_elements(By.CSS_SELECTOR,
                                                               "#charts svg"))
    marker = f"console-marker-{os.getpid()}"
    cli("exec", "-T", "worker", "sh", "-c", f"echo {marker} > /proc/1/fd/1")
    wait_for("the marker line", lambda: marker in text_of(browser, "#log"), driver=browser)
    assert "exit" in text_of(browser, "#restarts")  # the kill above, with its cause
    shot(browser, "container")

    for page, must in (("events", "action"), ("images", DEMO_IMAGE),
                       ("networks", "10."), ("volumes", "Volumes")):
        browser.get(f"{console.base}{page}")
        wait_for(f"the {page} page", lambda must=must: must in text_of(browser, "main"))
        shot(browser, page)
    browser.get(f"{console.base}networks")
    assert name in text_of(browser, "#networks-table")  # addresses name their container

    # Phone-sized: the stack page still fits and says health in words.
    browser.set_window_size(390, 844)
    browser.get(f"{console.base}stacks/demo")
    wait_for("the narrow stack page", lambda: "▶ running" in text_of(browser,
                                                                      "#services-table"))
    assert browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth + 1;")
    shot(browser, "stack-phone")


def test_console_refuses_strangers(cli: CLI, console: Console) -> None:
    """No token: refused. Another site's form, or one without the session's CSRF
    token: refused, and nothing is restarted."""
    (cli.cwd / "compose.yaml").write_text(STACK)
    cli("up", "-d")
    host = urlsplit(console.base).netloc
    with httpx.Client(base_url=console.base, follow_redirects=False) as anon:
        assert anon.get("/").status_code == 401
        assert anon.get("/stacks/demo").status_code == 401
        assert anon.get("/_sse/events").status_code == 401
        assert anon.post("/actions/restart", data={"project": "demo",
                                                   "service": "worker"}).status_code == 401
        assert anon.get("/?token=not-the-token").status_code == 401
        assert anon.get(console.url.replace(console.base, "/"),
                        headers={"Host": f"evil.example:{host.split(':')[1]}"}
                        ).status_code == 403  # DNS rebinding

    with httpx.Client(base_url=console.base, follow_redirects=False) as user:
        signed = user.get(console.url.replace(console.base, "/"))
        assert signed.status_code == 200
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        page = user.get("/actions/restart", params={"project": "demo", "service": "worker"})
        assert page.status_code == 200
        csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
        form = {"project": "demo", "service": "worker", "csrf": csrf}
        before = [c["name"] for c in containers(cli)]
        evil = user.post("/actions/restart", data=form,
                         headers={"Origin": "http://evil.example"})
        assert evil.status_code == 403
        no_origin = user.post("/actions/restart", data=form)
        assert no_origin.status_code == 403
        no_csrf = user.post("/actions/restart", data={**form, "csrf": "guess"},
                            headers={"Origin": console.base.rstrip("/")})
        assert no_csrf.status_code == 403
        events = [json.loads(line) for line in
                  cli("events", "--no-follow", "--json").stdout.splitlines()]
        assert any(e["actor"] == "cli" for e in events)  # `up` asked, by the CLI
        assert not any(e["actor"] == "ui" for e in events)  # the console asked nothing
        ok = user.post("/actions/restart", data=form,
                       headers={"Origin": console.base.rstrip("/")})
        assert ok.status_code == 303
        wait_for("the worker running again", lambda: sorted(
            c["name"] for c in containers(cli)) == sorted(before))
        wait_for("the restart asked by ui", lambda: any(
            json.loads(line).get("actor") == "ui"
            for line in cli("events", "--no-follow", "--json").stdout.splitlines()))

    # A script with the token as a bearer needs no session: stop, then start, the worker.
    token = console.url.split("token=")[1]
    with httpx.Client(base_url=console.base, headers={"Authorization": f"Bearer {token}"},
                      follow_redirects=False) as script:
        for verb, running in (("stop", 0), ("start", 1)):
            r = script.post(f"/actions/{verb}", data={"project": "demo", "service": "worker"})
            assert r.status_code == 303, r.text
            wait_for(f"{verb}: {running} worker running", lambda running=running: len(
                [c for c in containers(cli) if c["service"] == "worker"]) == running)
