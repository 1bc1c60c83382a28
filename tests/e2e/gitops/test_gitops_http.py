"""GitOps over smart HTTP with basic auth (a real `git http-backend` server process),
driven by signed webhooks: a bad signature is refused and changes nothing, a good one
syncs at once; a commit whose rollout fails its health checks is rolled back to the
last good commit and marked Failed; the token never shows, nor is stored."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import CLI, DEMO_IMAGE, torn_down
from support.freeaddrs import free_port
from support.gitops import GIT_ENV, Repo, source_status, wait_applied, wait_for

from stackd.cli.client import Client
from stackd.gitops.signatures import github_signature
from stackd.roots import Roots

SUPPORT = Path(__file__).resolve().parents[2] / "support"
TOKEN = "tok-4f9a2c77e1"
SECRET = "hook-secret-91b2"

STACK = """\
services:
  web:
    image: {image}
    command: ["sh", "-c", "mkdir -p /www && [ $$VERSION != broken ] &&
      echo $$VERSION > /www/index.html; exec httpd -f -p 80 -h /www"]
    environment:
      VERSION: {version}
    stop_signal: SIGKILL
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]
      interval: 1s
      timeout: 2s
      retries: 1
    deploy:
      update_config:
        order: start-first
        monitor: 1s
        failure_action: rollback
"""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Repo, Path, str]]:
    """A working repo whose pushes land in a bare one served over HTTP with basic auth."""
    root = tmp_path / "served"
    root.mkdir()
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(root / "r.git")],
                   check=True, env={**os.environ, **GIT_ENV})
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(SUPPORT / "git_http_server.py"), str(root),
                             str(port), "deploy", TOKEN])
    try:
        wait_for("the git HTTP server listening", lambda: _accepts(port), timeout=20)
        repo = Repo(tmp_path / "work-repo")
        repo.git("remote", "add", "origin", str(root / "r.git"))
        yield repo, root, f"http://127.0.0.1:{port}/r.git"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def _accepts(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture
def cli(no_leaks: Roots, demo_image: str, tmp_path: Path) -> Iterator[CLI]:
    work = tmp_path / "work"
    work.mkdir()
    secret = tmp_path / "hook.secret"
    secret.write_text(SECRET)
    hook_port = free_port()
    c = CLI(no_leaks, work, {"STACKD_WEBHOOK_LISTEN": f"127.0.0.1:{hook_port}",
                             "STACKD_WEBHOOK_SECRET_FILE": str(secret)})
    with torn_down(c):
        try:
            yield c
        finally:
            c("gitops", "remove", "site", check=False)
            c("-p", "site", "down", "-v", check=False, timeout=90)


def hook(cli: CLI, body: bytes, headers: dict[str, str]) -> int:
    url = f"http://{cli.environ['STACKD_WEBHOOK_LISTEN']}/hooks/site"
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def push(repo: Repo, message: str, version: str) -> str:
    sha = repo.commit(message, {"deploy/compose.yaml": STACK.format(image=DEMO_IMAGE,
                                                                    version=version)})
    repo.git("push", "-q", "origin", "main")
    return sha


def served_version(cli: CLI) -> str:
    from stackd.errors import StackdError

    try:
        with Client(cli.roots, autostart=False) as c:
            r = c.post("/v1/containers/site-web-1/exec", {"cmd": ["sh", "-c", "echo $VERSION"]})
    except StackdError:
        return ""
    return str(r["stdout"]).strip()


def test_http_source_follows_signed_webhooks_and_rolls_back_a_failing_commit(
        cli: CLI, served: tuple[Repo, Path, str], tmp_path: Path) -> None:
    repo, _, url = served
    token = tmp_path / "token"
    token.write_text(f"deploy:{TOKEN}\n")
    one = push(repo, "version one", "one")
    # Only webhooks (and the first sync) fetch: the interval is an hour.
    cli("gitops", "add", "site", "--repo", url, "--token-file", str(token),
        "--path", "deploy", "--interval", "1h")
    wait_applied(cli.roots, "site", one, timeout=60)
    wait_for("version one served", lambda: served_version(cli) == "one")

    # A wrong token: the fetch fails, and says so without the token.
    bad = cli("gitops", "add", "leaky", "--repo", url.replace("http://", "http://x:y@"),
              check=False)
    assert bad.returncode != 0 and "password" in bad.stderr and "y@" not in bad.stderr

    two = push(repo, "version two", "two")
    assert hook(cli, b'{"ref":"refs/heads/main"}',
                {"X-Hub-Signature-256": github_signature(b"wrong", b"{}")}) == 401
    assert hook(cli, b"{}", {"X-Gitlab-Token": "nope"}) == 401
    time.sleep(1.5)
    assert source_status(cli.roots, "site")["applied"]["sha"] == one
    body = b'{"ref":"refs/heads/main"}'
    assert hook(cli, body, {"X-Hub-Signature-256":
                            github_signature(SECRET.encode(), body)}) == 202
    wait_applied(cli.roots, "site", two, timeout=20)
    wait_for("version two served", lambda: served_version(cli) == "two")

    # A commit whose new container never gets healthy: rolled back to `two`, Failed.
    broken = push(repo, "version broken", "broken")
    assert hook(cli, b"", {"X-Gitlab-Token": SECRET}) == 202
    st = wait_for("the broken commit Failed", lambda: (
        s := source_status(cli.roots, "site"))["failed_commit"] == broken
        and s["status"] == "Failed" and s, timeout=60)
    assert st["applied"]["sha"] == two
    wait_for("version two served after the rollback", lambda: served_version(cli) == "two")

    # The token is nowhere in what stackd shows or keeps.
    shown = cli("gitops", "status", "site", check=False).stdout + cli("gitops", "ls").stdout
    assert TOKEN not in shown
    for path in cli.roots.state.glob("stackd.db*"):
        assert TOKEN.encode() not in path.read_bytes()
    with Client(cli.roots, autostart=False) as c:
        metrics = c.request("GET", "/metrics")
    text = metrics if isinstance(metrics, str) else str(metrics)
    assert 'stackd_gitops_sync_total{result="applied"}' in text
    assert "stackd_gitops_webhook_refused_total 2.0" in text
    assert "stackd_gitops_last_synced_commit_timestamp_seconds" in text


def test_git_credential_helpers_answer_for_a_source_without_a_token_file(
        served: tuple[Repo, Path, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No token file: git's own credential helpers (here `store`, configured in the
    global git config the daemon's environment names) give the password."""
    from stackd.errors import UnavailableError
    from stackd.gitops import git

    repo, _, url = served
    sha = push(repo, "version one", "one")
    config = tmp_path / "gitconfig"
    config.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    with pytest.raises(UnavailableError, match="terminal prompts disabled"):
        git.fetch(url, "branch", "main", tmp_path / "a.git", git.Credentials())
    store = tmp_path / "credentials"
    store.write_text(url.replace("http://", f"http://deploy:{TOKEN}@").rsplit("/", 1)[0]
                     + "\n")
    config.write_text(f"[credential]\n\thelper = store --file={store}\n")
    assert git.fetch(url, "branch", "main", tmp_path / "b.git", git.Credentials()).sha == sha


def test_a_webhook_listener_that_cannot_start_leaves_the_daemon_serving(
        no_leaks: Roots, tmp_path: Path) -> None:
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", free_port()))
    taken.listen()
    address = f"127.0.0.1:{taken.getsockname()[1]}"
    secret = tmp_path / "hook.secret"
    secret.write_text(SECRET)
    work = tmp_path / "work"
    work.mkdir()
    try:
        with torn_down(CLI(no_leaks, work, {"STACKD_WEBHOOK_LISTEN": address,
                                            "STACKD_WEBHOOK_SECRET_FILE": str(secret)})
                       ) as cli:
            assert cli("gitops", "ls").stdout.startswith("NAME")
            with Client(cli.roots, autostart=False) as c:
                errors = [e["message"] for e in c.stream(
                    "GET", "/v1/events", params={"follow": "false"})
                    if e["type"] == "error"]
            assert any(f"listener on {address} not started" in m for m in errors), errors
    finally:
        taken.close()
