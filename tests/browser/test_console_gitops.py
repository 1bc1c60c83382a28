"""The console's GitOps view in chromium, against a real daemon following a file://
repository (as tests/e2e/gitops does): the applied commit and its status on the
stacks, GitOps and stack pages, and "sync now" from the page applying a newer commit,
named in `stackd events` by the console's token."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import CLI, DEMO_IMAGE
from support.gitops import Repo, wait_applied
from support.ui import Console, click, shot, text_of, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow]


def stack(greeting: str) -> str:
    return f"""\
services:
  web:
    image: {DEMO_IMAGE}
    command: ["sleep", "3600"]
    stop_signal: SIGKILL
    environment:
      GREETING: {greeting}
"""


@pytest.fixture
def followed(cli: CLI) -> Iterator[CLI]:
    """`cli`, whose source "site" is forgotten before its stack is taken down (a
    source would bring its stack back)."""
    try:
        yield cli
    finally:
        cli("gitops", "remove", "site", check=False)
        cli("-p", "site", "down", "-v", check=False, timeout=90)


def test_console_shows_gitops_sources_and_syncs_one(followed: CLI, console: Console,
                                                    browser: Any, tmp_path: Path) -> None:
    cli = followed
    repo = Repo(tmp_path / "repo")
    first = repo.commit("greet one", {"compose.yaml": stack("one")})
    # An hour between polls: only the page's "sync now" brings the second commit.
    cli("gitops", "add", "site", "--repo", f"file://{repo.path}", "--interval", "1h")
    wait_applied(cli.roots, "site", first, timeout=60)

    # The stacks page: the stack's source, its status as a word and an icon, its commit.
    browser.get(console.url)
    row = wait_for("site Synced at the first commit", lambda: (
        (t := text_of(browser, "#stacks-table")) and "✔ Synced" in t and first[:12] in t
        and t), driver=browser)
    assert "site" in row
    shot(browser, "stacks-gitops")

    # The GitOps page: repository, ref, commit, its message, no error.
    click(browser, 'nav a[href="/gitops"]')
    wait_for("the GitOps page", lambda: "GitOps" in browser.title, driver=browser)
    table = text_of(browser, "#gitops-table")
    assert str(repo.path) in table and "branch main" in table and "greet one" in table
    assert text_of(browser, '.commit[data-source="site"]') == first[:12]

    # A second commit, then "sync now" from the page, confirmed.
    second = repo.commit("greet two", {"compose.yaml": stack("two")})
    click(browser, 'a[href^="/actions/sync"][href*="source=site"]')
    wait_for("the confirmation", lambda: "Confirm" in browser.title, driver=browser)
    assert "Sync GitOps source site now?" in text_of(browser, "main")
    browser.find_element("id", "confirm").click()
    wait_for("the GitOps page at the second commit", lambda: text_of(
        browser, '.commit[data-source="site"]') == second[:12], timeout=60, driver=browser)
    wait_for("Synced again", lambda: "✔ Synced" in text_of(
        browser, '.sync-status[data-source="site"]'), timeout=60, driver=browser)
    assert browser.current_url.endswith("/gitops")
    assert "greet two" in text_of(browser, "#gitops-table")
    shot(browser, "gitops")

    events = [json.loads(line) for line in cli(
        "-p", "site", "events", "--no-follow", "--json").stdout.splitlines()]
    assert any(e["type"] == "action" and e["actor"] == "ui" and e["verb"] == "sync"
               and e["project"] == "site" for e in events), events
    assert "ui asked: sync gitops source site" in cli("-p", "site", "events",
                                                        "--no-follow").stdout

    # The stack's page names its source, at the new commit, with "sync now" too.
    browser.get(f"{console.base}stacks/site")
    wait_for("the stack page's source", lambda: second[:12] in text_of(
        browser, "#gitops-source"), driver=browser)
    assert "greet two" in text_of(browser, "#gitops-source")
    wait_for("the plan: the next sync would do nothing", lambda: (
        (t := text_of(browser, "#plan")) and "a sync would do nothing" in t
        and second[:12] in t), driver=browser)
    assert browser.find_elements(
        "css selector", 'a[href^="/actions/sync"][href*="back=stack"]')
    shot(browser, "stack-gitops")

    # Phone-sized: the GitOps page fits and says the status in words.
    browser.set_window_size(390, 844)
    browser.get(f"{console.base}gitops")
    wait_for("the narrow GitOps page", lambda: "✔ Synced" in text_of(
        browser, "#gitops-table"), driver=browser)
    assert browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth + 1;")
    shot(browser, "gitops-phone")
